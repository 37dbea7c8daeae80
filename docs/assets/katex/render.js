// Renders the math that pymdownx.arithmatex (generic mode) marks, on every page load
// (also after mkdocs-material's instant navigation).
function l1optaxRenderMath() {
  document.querySelectorAll(".arithmatex").forEach(function (el) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  });
}
if (typeof document$ !== "undefined") {
  document$.subscribe(l1optaxRenderMath);
} else {
  document.addEventListener("DOMContentLoaded", l1optaxRenderMath);
}
