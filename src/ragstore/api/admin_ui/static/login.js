// The admin login form: posts JSON (as every write to ragstore must) with the form's CSRF token.
"use strict";
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target, message = document.getElementById("message");
  message.textContent = "…";
  const answer = await fetch("/admin/login", {method: "POST",
    headers: {"content-type": "application/json", "x-csrf-token": form.dataset.csrf},
    body: JSON.stringify({email: form.email.value, password: form.password.value})});
  if (answer.ok) { window.location.href = "/admin"; return; }
  const data = await answer.json().catch(() => null);
  message.textContent = data && data.error ? data.error.message : "HTTP " + answer.status;
});
