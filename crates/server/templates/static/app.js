// Progressive enhancement only: every page works without this file.
// - forms with data-confirm ask before submitting (revoking a key);
// - buttons with data-copy copy the named input's value (the new key's token).
document.addEventListener("submit", (ev) => {
  const msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) ev.preventDefault();
});
document.querySelectorAll("button[data-copy]").forEach((b) => {
  b.hidden = false;
  b.addEventListener("click", async () => {
    const input = document.getElementById(b.getAttribute("data-copy"));
    if (!input) return;
    try {
      await navigator.clipboard.writeText(input.value);
      b.textContent = "Copied";
    } catch (_) {
      input.select();
    }
  });
});
