/* 0xinf console dialogs: native <dialog> opened as a modal (focus moves in, Escape closes,
   the page behind is inert), plus the downloads a dialog offers. No inline handlers: the
   page CSP allows scripts only from /static. */
(function () {
  "use strict";

  function open(dialog) {
    if (!dialog || dialog.open) return;
    dialog.showModal();
  }

  // Focus what a freshly swapped or opened dialog asks for: a field with an error first.
  function focusInside(root) {
    var target = root.querySelector('[aria-invalid="true"]') || root.querySelector("[autofocus]");
    if (target) target.focus();
  }

  function download(button) {
    var source = document.getElementById(button.getAttribute("data-download"));
    if (!source) return;
    var blob = new Blob([source.textContent], { type: "text/plain" });
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = button.getAttribute("data-filename") || "download.txt";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  }

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-dialog-open]");
    if (opener) {
      event.preventDefault(); // the link's ?open= address is for visitors without JS
      var dialog = document.getElementById(opener.getAttribute("data-dialog-open"));
      open(dialog);
      if (dialog) focusInside(dialog);
      return;
    }
    var closer = event.target.closest("[data-dialog-close]");
    if (closer) {
      closer.closest("dialog").close();
      return;
    }
    var saver = event.target.closest("[data-download]");
    if (saver) {
      download(saver);
      return;
    }
    // A click on the backdrop (the dialog element itself, outside its box) closes it.
    if (event.target.tagName === "DIALOG" && event.target.open) {
      var box = event.target.getBoundingClientRect();
      var inside = event.clientX >= box.left && event.clientX <= box.right &&
        event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) event.target.close();
    }
  });

  // A dialog that showed a one-time secret reloads the page when it closes, so the list
  // behind it is current and the secret is gone from the document.
  document.addEventListener("close", function (event) {
    var dialog = event.target;
    if (dialog.tagName !== "DIALOG") return;
    if (dialog.dataset.reopening) {
      delete dialog.dataset.reopening; // closed only to be shown again as a modal
      return;
    }
    if (dialog.querySelector("[data-reload-on-close]")) {
      window.location.replace(window.location.pathname);
    }
  }, true);

  document.addEventListener("htmx:afterSwap", function (event) {
    var dialog = event.target.closest("dialog");
    if (dialog) focusInside(event.target);
  });

  document.addEventListener("DOMContentLoaded", function () {
    // The server opens a dialog in place (the `open` attribute, so it shows without JS);
    // here it becomes a modal: focus inside, Escape closes, the page behind is inert.
    document.querySelectorAll("dialog[data-open-on-load]").forEach(function (dialog) {
      if (dialog.open) {
        dialog.dataset.reopening = "1";
        dialog.close();
      }
      open(dialog);
      focusInside(dialog);
    });
  });
})();
