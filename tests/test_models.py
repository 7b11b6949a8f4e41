"""Model selection without loading a model: class mappings, several models, the site config's worker argv."""

import pytest

from anjeon.config import ConfigError, parse_site_config
from anjeon.inference.models import ModelError, MultiDetector, NullDetector, parse_class_map, resolve_model
from anjeon.upspec import build_specs


@pytest.mark.parametrize(
    "items, expected, error",
    [
        (["person=Normal,Fall"], {"Normal": "person", "Fall": "person"}, None),
        (
            ["person=person, Normal", "head=Without Helmet"],
            {"person": "person", "Normal": "person", "Without Helmet": "head"},
            None,
        ),
        ([], {}, None),
        (["person"], None, "is not CLASS=LABEL"),
        (["=Normal"], None, "is not CLASS=LABEL"),
        (["person="], None, "is not CLASS=LABEL"),
        (["person=Normal", "head=Normal"], None, "mapped to both 'person' and 'head'"),
    ],
)
def test_class_map_items(items, expected, error):
    if error:
        with pytest.raises(ModelError, match=error):
            parse_class_map(items)
    else:
        assert parse_class_map(items) == expected


def test_config_mapping_wins_over_a_builtin_and_extends_a_file_model(tmp_path):
    spec = resolve_model("person", {"Fall": "fallen", "Worker": "person"})
    assert spec.class_map == {"Normal": "person", "Fall": "fallen", "Worker": "person"}
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"not loaded here")
    assert resolve_model(str(weights), {"Normal": "person"}).class_map == {"Normal": "person"}


def test_multi_detector_concatenates_per_frame_and_names_itself():
    multi = MultiDetector([NullDetector(), NullDetector()])
    assert multi.name == "null+null" and multi.predict([None, None]) == [[], []]


WORKERS = """\
workers:
  count: 1
  model: {model}
  classes: {classes}
"""


def test_site_config_lists_models_and_classes_as_repeated_worker_flags():
    site = parse_site_config(
        WORKERS.format(
            model="[person, helmet]", classes="{person: [person, Normal, Fall], head: Without Helmet}"
        )
    )
    assert site.workers.model == ("person", "helmet")
    argv = build_specs(site, cores=2, with_watch=False)[1].argv
    pairs = [(argv[i], argv[i + 1]) for i, a in enumerate(argv) if a in ("--model", "--class-map")]
    assert pairs == [
        ("--model", "person"),
        ("--model", "helmet"),
        ("--class-map", "person=person,Normal,Fall"),
        ("--class-map", "head=Without Helmet"),
    ]


def test_a_single_model_name_still_works():
    site = parse_site_config(WORKERS.format(model="person", classes="{}"))
    argv = build_specs(site, cores=2, with_watch=False)[1].argv
    assert argv[argv.index("--model") + 1] == "person" and argv.count("--model") == 1
    assert "--class-map" not in argv


@pytest.mark.parametrize(
    "model, classes, expected",
    [
        ("[]", "{}", "site.yaml:3: workers.model: must be a model name or path, or a non-empty list"),
        ("[person, person]", "{}", "site.yaml:3: workers.model: lists a model twice"),
        ("7", "{}", "site.yaml:3: workers.model: must be a model name"),
        ("person", "[person]", "site.yaml:4: workers.classes: must map an anjeon class"),
        ("person", "{person: []}", "site.yaml:4: workers.classes: 'person': must be a class name mapped"),
        ("person", "{person: [a,b]}", None),
        ("person", "{person: ['a,b']}", "no ',' or '='"),
    ],
)
def test_bad_model_lists_and_class_maps_name_line_and_field(model, classes, expected):
    text = WORKERS.format(model=model, classes=classes)
    if expected is None:
        assert parse_site_config(text, "site.yaml").workers.classes == {"person": ("a", "b")}
        return
    with pytest.raises(ConfigError) as err:
        parse_site_config(text, "site.yaml")
    assert expected in str(err.value)
