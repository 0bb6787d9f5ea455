// MathJax reads this before it loads: typeset only what pymdownx.arithmatex marked (\( ... \) and \[ ... \]).
window.MathJax = {
  tex: { inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]] },
  options: { ignoreHtmlClass: ".*", processHtmlClass: "arithmatex" },
};
