// MathJax 3, served by the site itself (assets/mathjax, copied from the django-static-mathjax
// wheel at build time). pymdownx.arithmatex wraps formulas in \( \) and \[ \] inside
// .arithmatex elements; notebook markdown cells keep $ $ and $$ $$.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
    tags: "ams",
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-MarkdownOutput",
  },
};
