/*
 * Password field helpers for Portcullis.
 *
 * Load with <script src="/static/password.js" defer></script>. No inline
 * handlers, so it runs under a Content-Security-Policy of script-src 'self'.
 * Pages work without it: the inputs stay plain password inputs and the
 * strength line stays empty.
 *
 * 1. Every div.password-field holding an input[type=password] gets a
 *    button.toggle-password ("Show"/"Hide") that switches the input between
 *    type="password" and type="text".
 * 2. Every input with a data-strength="ID" attribute updates the element with
 *    that id (a p.strength with aria-live="polite") as the user types: a short
 *    hint and data-level 0..4, from the length (compared with the input's
 *    minlength) and the variety of characters. It is only a hint; the server
 *    does the real checks.
 */
(function () {
  "use strict";

  var LABELS = ["Too short", "Weak", "Fair", "Good", "Strong"];
  var DEFAULT_MIN = 8;
  var uid = 0;

  /* ---- Show/hide toggle ------------------------------------------------ */

  function setShown(input, button, shown) {
    input.type = shown ? "text" : "password";
    button.textContent = shown ? "Hide" : "Show";
    button.setAttribute("aria-pressed", shown ? "true" : "false");
    button.setAttribute("aria-label", shown ? "Hide password" : "Show password");
  }

  function addToggle(wrapper) {
    var input = wrapper.querySelector('input[type="password"]');
    if (!input) return;
    if (!input.id) {
      uid += 1;
      input.id = "password-input-" + uid;
    }

    var button = wrapper.querySelector("button.toggle-password");
    if (!button) {
      button = document.createElement("button");
      button.className = "toggle-password";
      input.insertAdjacentElement("afterend", button);
    }
    button.type = "button";
    button.setAttribute("aria-controls", input.id);
    setShown(input, button, false);

    button.addEventListener("click", function () {
      setShown(input, button, input.type === "password");
    });

    // Hide the password again before the form is sent, so the browser
    // treats (and stores) it as a password.
    if (input.form) {
      input.form.addEventListener("submit", function () {
        setShown(input, button, false);
      });
    }
  }

  /* ---- Strength hint --------------------------------------------------- */

  function minLength(input) {
    var n = parseInt(input.getAttribute("minlength"), 10);
    return n > 0 ? n : DEFAULT_MIN;
  }

  // Character classes: lower case, upper case, digits, anything else.
  // Unicode-aware where the engine supports property escapes.
  var CLASSES = (function () {
    try {
      return [
        new RegExp("\\p{Ll}", "u"),
        new RegExp("\\p{Lu}", "u"),
        new RegExp("\\p{N}", "u"),
        new RegExp("[^\\p{Ll}\\p{Lu}\\p{N}]", "u")
      ];
    } catch (e) {
      return [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/];
    }
  })();

  function variety(value) {
    var kinds = 0;
    for (var i = 0; i < CLASSES.length; i += 1) {
      if (CLASSES[i].test(value)) kinds += 1;
    }
    return kinds;
  }

  // 0 = shorter than minlength, 1..4 = weak..strong.
  function strengthLevel(value, min) {
    var chars = Array.from(value);
    var len = chars.length;
    if (len < min) return 0;

    var level = 1;
    if (len >= min + 4) level += 1;
    if (len >= min * 2) level += 1;
    if (len >= Math.max(min * 3, 20)) level += 1;

    var kinds = variety(value);
    if (kinds >= 3) level += 1;
    if (kinds >= 4) level += 1;

    // Few distinct characters ("aaaaaaaa", "abababab") stay weak.
    var distinct = new Set(chars).size;
    if (distinct < 4) level = 1;
    else if (distinct < 6) level = Math.min(level, 2);

    return Math.min(level, 4);
  }

  function update(input, output) {
    var value = input.value;
    if (value === "") {
      output.removeAttribute("data-level");
      if (output.textContent !== "") output.textContent = "";
      return;
    }
    var level = strengthLevel(value, minLength(input));
    // Only touch the live region when something changed, so screen readers
    // are not told the same thing on every key press.
    if (output.getAttribute("data-level") !== String(level)) {
      output.setAttribute("data-level", String(level));
    }
    if (output.textContent !== LABELS[level]) output.textContent = LABELS[level];
  }

  function addStrength(input) {
    var output = document.getElementById(input.getAttribute("data-strength"));
    if (!output) return;
    if (!output.hasAttribute("aria-live")) output.setAttribute("aria-live", "polite");
    input.addEventListener("input", function () {
      update(input, output);
    });
    if (input.value !== "") update(input, output);
  }

  /* ---- Start ------------------------------------------------------------ */

  function init() {
    var i;
    var wrappers = document.querySelectorAll("div.password-field");
    for (i = 0; i < wrappers.length; i += 1) addToggle(wrappers[i]);
    var inputs = document.querySelectorAll("input[data-strength]");
    for (i = 0; i < inputs.length; i += 1) addStrength(inputs[i]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
