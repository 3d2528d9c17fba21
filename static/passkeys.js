// Passkeys: sign-in (a button and the username field's autofill) and the
// account page's add and remove. Without this script the login page works
// with the password alone.
(function () {
  "use strict";

  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // The server's options (base64url strings) as the browser takes them.
  function creationOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = toBytes(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: toBytes(pk.user.id) });
    pk.excludeCredentials = (pk.excludeCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: toBytes(c.id) });
    });
    return { publicKey: pk };
  }

  function requestOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = toBytes(pk.challenge);
    pk.allowCredentials = (pk.allowCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: toBytes(c.id) });
    });
    return { publicKey: pk };
  }

  function registrationJSON(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64url(r.attestationObject),
        clientDataJSON: toB64url(r.clientDataJSON),
        transports: r.getTransports ? r.getTransports() : []
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }

  function assertionJSON(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64url(r.authenticatorData),
        clientDataJSON: toB64url(r.clientDataJSON),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (res) {
      return res.text().then(function (text) {
        var data = {};
        try { data = JSON.parse(text); } catch (e) { data = {}; }
        if (!res.ok) {
          throw new Error(data.error || "Something went wrong (" + res.status + "). Reload the page and try again.");
        }
        return data;
      });
    });
  }

  // The page's CSRF token, from its forms' hidden field.
  function pageCsrf() {
    var field = document.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  function say(el, text) {
    if (el) { el.textContent = text; }
  }

  // --- Sign-in -------------------------------------------------------------
  var signIn = document.getElementById("passkey-sign-in");
  if (signIn) {
    var csrf = pageCsrf();
    var next = signIn.getAttribute("data-next");
    var error = document.getElementById("passkey-error");
    var remember = document.getElementById("remember_me");
    var pending = null;

    var finish = function (start, cred) {
      return post("/login/passkey/finish", csrf, {
        handle: start.handle,
        response: assertionJSON(cred),
        remember_me: !!(remember && remember.checked),
        next: next
      }).then(function (done) {
        window.location.assign(done.redirect || "/dashboard");
      });
    };

    var run = function (conditional) {
      if (pending) { pending.abort(); }
      var ctl = new AbortController();
      pending = ctl;
      return post("/login/passkey/start", csrf).then(function (start) {
        var opts = requestOptions(start.options);
        opts.signal = ctl.signal;
        if (conditional) { opts.mediation = "conditional"; }
        return navigator.credentials.get(opts).then(function (cred) {
          if (!cred) { return null; }
          return finish(start, cred);
        });
      });
    };

    signIn.hidden = false;
    document.getElementById("passkey-login").addEventListener("click", function () {
      say(error, "");
      run(false).catch(function (e) {
        if (e && e.name === "AbortError") { return; }
        say(error, e && e.name === "NotAllowedError" ? "No passkey was used." : (e && e.message) || "The passkey sign-in failed.");
      });
    });

    // Autofill: the browser offers passkeys in the username field's list.
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (!ok) { return; }
        run(true).catch(function (e) {
          if (e && (e.name === "AbortError" || e.name === "NotAllowedError")) { return; }
          say(error, (e && e.message) || "The passkey sign-in failed.");
        });
      }).catch(function () {});
    }
  }

  // --- Account page: add ---------------------------------------------------
  var add = document.getElementById("add-passkey");
  if (add) {
    var addCsrf = pageCsrf();
    var status = document.getElementById("passkey-status");
    var button = document.getElementById("add-passkey-button");
    button.disabled = false;
    say(status, "Your browser will ask for your device's screen lock or a security key.");
    add.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var name = document.getElementById("passkey-name").value;
      button.disabled = true;
      say(status, "Waiting for your device…");
      post("/account/passkeys/register/start", addCsrf, { name: name }).then(function (start) {
        return navigator.credentials.create(creationOptions(start.options)).then(function (cred) {
          return post("/account/passkeys/register/finish", addCsrf, { handle: start.handle, response: registrationJSON(cred) });
        });
      }).then(function (done) {
        window.location.assign(done.redirect || "/account/passkeys");
      }).catch(function (e) {
        button.disabled = false;
        say(status, e && e.name === "NotAllowedError" ? "No passkey was made." :
          e && e.name === "InvalidStateError" ? "This device already holds a passkey for your account." :
          (e && e.message) || "Adding the passkey failed.");
      });
    });

    // --- Remove, confirming with another passkey -----------------------------
    Array.prototype.forEach.call(document.querySelectorAll("form.passkey-delete"), function (form) {
      var confirmButton = form.querySelector(".confirm-with-passkey");
      if (!confirmButton) { return; }
      confirmButton.hidden = false;
      confirmButton.addEventListener("click", function () {
        post("/account/passkeys/confirm/start", addCsrf).then(function (start) {
          return navigator.credentials.get(requestOptions(start.options)).then(function (cred) {
            form.querySelector("input[name=password]").value = "";
            form.querySelector("input[name=passkey_handle]").value = start.handle;
            form.querySelector("input[name=passkey_response]").value = JSON.stringify(assertionJSON(cred));
            form.submit();
          });
        }).catch(function (e) {
          say(status, (e && e.message) || "The passkey could not confirm the removal.");
        });
      });
    });
  }
})();
