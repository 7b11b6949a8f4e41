from anjeon.cli import main

main()
