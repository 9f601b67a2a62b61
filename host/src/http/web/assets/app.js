// Cairn's web UI: the only script, loaded from Cairn (CSP script-src 'self'),
// with no inline handlers. Pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: data-copy names the element whose text is copied. The
  // button says "Copied" (data-state="copied") once the text is on the
  // clipboard, or asks for Ctrl+C with the text selected when the browser
  // refuses.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) return;
      var text = source.textContent;
      var done = function () {
        button.textContent = "Copied";
        button.setAttribute("data-state", "copied");
      };
      var fallback = function () {
        var range = document.createRange();
        range.selectNodeContents(source);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        var ok = false;
        try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
        if (ok) { done(); } else { button.textContent = "Press Ctrl+C"; button.setAttribute("data-state", "selected"); }
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, fallback);
      } else {
        fallback();
      }
    });
  });
  // The version selector opens the chosen version at once.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
});
