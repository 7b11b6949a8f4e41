import { translate } from "./i18n.js";

translate();
document.getElementById("login").onsubmit = async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const resp = await fetch("/api/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: form.get("user"), password: form.get("password") }),
  });
  if (resp.ok) location.href = "/";
  else document.getElementById("login-error").hidden = false;
};
