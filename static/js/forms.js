/* Page helpers for plain forms: copy a value to the clipboard ([data-copy]), select a field on
 * focus ([data-select-on-focus]), and confirm before a destructive submit (form[data-confirm]). */
(function () {
  "use strict";

  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
        button.textContent = "Copied";
      } catch (error) {
        // No clipboard access (plain HTTP, or permission refused): the key stays selected.
        button.textContent = "Press Ctrl+C";
      }
    });
  });

  document.querySelectorAll("[data-select-on-focus]").forEach((field) => {
    field.addEventListener("focus", () => field.select());
  });

  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
