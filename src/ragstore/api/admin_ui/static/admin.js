// ragstore admin: the only script of the pages. Every button with data-post sends one POST to the JSON API
// with the session's CSRF token, shows the answer in #message, and reloads the page to show the new state.
"use strict";
(function () {
  const meta = document.querySelector("meta[name=csrf-token]");
  const csrf = meta ? meta.content : "";
  const message = document.getElementById("message");

  function say(text, ok) {
    if (!message) return;
    message.textContent = text;
    message.className = ok ? "ok" : "failing";
  }

  function describe(url, status, data) {
    if (status === 202) return "started: " + url;
    if (data && typeof data.requeued === "number") return "done: " + data.requeued + " queued again";
    if (data && typeof data.ok === "boolean" && "rows_checked" in data)
      return data.ok ? "done: the audit chain holds (" + data.rows_checked + " rows)" : "done: chain broken: " + data.reason;
    if (data && Array.isArray(data.steps)) return "done: " + url + (data.dry_run ? " (dry run)" : "");
    return "done: " + url;
  }

  async function post(button) {
    const url = button.dataset.post;
    const question = button.dataset.confirm;
    if (question && !window.confirm(question)) return;
    button.disabled = true;
    say("…", true);
    try {
      const answer = await fetch(url, {
        method: "POST",
        headers: {"content-type": "application/json", "x-csrf-token": csrf},
        body: button.dataset.body || "{}",
        credentials: "same-origin",
      });
      const data = answer.status === 204 ? null : await answer.json().catch(() => null);
      if (answer.ok) {
        say(describe(url, answer.status, data), true);
        window.setTimeout(() => window.location.reload(), answer.status === 202 ? 2500 : 1200);
      } else {
        say("error " + answer.status + ": " + (data && data.error ? data.error.message : answer.statusText), false);
        button.disabled = false;
      }
    } catch (error) {
      say("error: " + error, false);
      button.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target.closest("button[data-post]") : null;
    if (target) { event.preventDefault(); post(target); }
  });

  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await fetch("/admin/logout", {method: "POST", headers: {"content-type": "application/json", "x-csrf-token": csrf},
        body: "{}", credentials: "same-origin"});
      window.location.href = "/admin/login";
    });
  }
})();
