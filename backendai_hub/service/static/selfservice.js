// The self-service page's actions: issue and revoke keypairs, stop sessions, copy a new key's lines.
// Every write goes to the service's REST API with the page's XSRF token; a new secret lives only in
// this page's memory and DOM until the user hides it or leaves.
"use strict";
(function () {
  const body = document.body;
  const api = body.dataset.api;
  const xsrf = document.querySelector('meta[name="xsrf-token"]').content;
  const status = document.getElementById("status");

  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "ok";
  }

  async function call(method, path, payload) {
    const init = {
      method: method, credentials: "same-origin", cache: "no-store",
      headers: {"X-XSRFToken": xsrf, "Accept": "application/json"},
    };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    const r = await fetch(api + path, init);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      throw new Error((data && data.message) || (r.status + " " + r.statusText));
    }
    return {status: r.status, data: data};
  }

  // values are URLs and base64url keys; anything else is single-quoted for the shell
  function shellValue(v) {
    return /^[A-Za-z0-9_\-.:\/@%+=,]+$/.test(v) ? v : "'" + v.replace(/'/g, "'\\''") + "'";
  }

  function linesFor(accessKey, secretKey) {
    const endpoint = window.location.origin + body.dataset.endpointPath;
    return ["export BACKEND_ENDPOINT=" + shellValue(endpoint),
            "export BACKEND_ENDPOINT_TYPE=api",
            "export BACKEND_ACCESS_KEY=" + shellValue(accessKey),
            "export BACKEND_SECRET_KEY=" + shellValue(secretKey)].join("\n") + "\n";
  }

  async function copyFrom(id, button) {
    const el = document.getElementById(id);
    const text = el.value !== undefined ? el.value : el.textContent;
    let done = false;
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); done = true; } catch (e) { done = false; }
    }
    if (!done) {  // no clipboard API (plain http): select the text and use the legacy command
      const range = document.createRange();
      if (el.select) { el.focus(); el.select(); } else {
        range.selectNodeContents(el);
        const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
      }
      done = document.execCommand && document.execCommand("copy");
    }
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = done ? "Copied" : "Select and copy by hand";
    setTimeout(function () { button.textContent = label; }, 2500);
    say(done ? "Copied to the clipboard." : "The browser refused to copy: select the text and copy it.", !done);
  }

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) { td.className = className; }
    td.textContent = text;
    return td;
  }

  function addKeyRow(kp) {
    const tbody = document.querySelector("#keys tbody");
    const empty = tbody.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    const tr = document.createElement("tr");
    tr.dataset.accessKey = kp.access_key;
    const code = document.createElement("code");
    code.textContent = kp.access_key;
    const first = document.createElement("td");
    first.appendChild(code);
    tr.append(first, cell(kp.resource_policy), cell((kp.created_at || "").slice(0, 16).replace("T", " ")),
              cell("never"), cell("active", "state ok"));
    const actions = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "revoke danger";
    button.dataset.accessKey = kp.access_key;
    button.setAttribute("aria-label", "Revoke keypair " + kp.access_key);
    button.textContent = "Revoke";
    actions.appendChild(button);
    tr.appendChild(actions);
    tbody.appendChild(tr);
  }

  function forgetSecret() {
    const panel = document.getElementById("new-key");
    document.getElementById("new-secret").textContent = "";
    document.getElementById("new-lines").value = "";
    document.getElementById("new-access").textContent = "";
    panel.hidden = true;
  }

  document.getElementById("issue-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const button = document.getElementById("issue");
    const choice = document.getElementById("issue-policy");
    const payload = choice && choice.value ? {resource_policy: choice.value} : {};
    button.disabled = true;
    try {
      const r = await call("POST", "keypairs", payload);
      const kp = r.data;
      document.getElementById("new-access").textContent = kp.access_key;
      document.getElementById("new-secret").textContent = kp.secret_key;
      document.getElementById("new-lines").value = linesFor(kp.access_key, kp.secret_key);
      const panel = document.getElementById("new-key");
      panel.hidden = false;
      addKeyRow(kp);
      say("Issued keypair " + kp.access_key + ". Copy its secret key now: it is shown only once.");
      panel.focus();
    } catch (e) {
      say("Could not issue a keypair: " + e.message, true);
    } finally {
      button.disabled = false;
    }
  });

  document.getElementById("forget").addEventListener("click", function () {
    forgetSecret();
    say("The secret key is hidden; this page cannot show it again.");
    document.getElementById("issue").focus();
  });

  document.addEventListener("click", async function (ev) {
    const button = ev.target.closest("button");
    if (!button) { return; }
    if (button.classList.contains("copy")) {
      await copyFrom(button.dataset.copy, button);
    } else if (button.classList.contains("revoke")) {
      const ak = button.dataset.accessKey;
      if (!window.confirm("Revoke keypair " + ak + "? Programs that use it are refused from now on.")) { return; }
      button.disabled = true;
      try {
        await call("PATCH", "keypairs/" + encodeURIComponent(ak), {is_active: false});
        const row = button.closest("tr");
        const state = row.querySelector(".state");
        state.textContent = "revoked";
        state.className = "state off";
        button.remove();
        say("Revoked keypair " + ak + ".");
      } catch (e) {
        button.disabled = false;
        say("Could not revoke " + ak + ": " + e.message, true);
      }
    } else if (button.classList.contains("stop")) {
      const id = button.dataset.session;
      const label = button.getAttribute("aria-label").replace(/^Stop /, "");
      if (!window.confirm("Stop " + label + "? Unsaved work in it is lost.")) { return; }
      button.disabled = true;
      try {
        const r = await call("DELETE", "sessions/" + encodeURIComponent(id));
        const row = button.closest("tr");
        row.querySelector(".status").textContent = r.status === 202 ? "stopping" : r.data.status;
        button.remove();
        say((r.status === 202 ? "Stopping " : "Stopped ") + label + ".");
      } catch (e) {
        button.disabled = false;
        say("Could not stop " + label + ": " + e.message, true);
      }
    }
  });
})();
