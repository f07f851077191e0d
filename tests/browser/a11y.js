// Accessibility checks run inside the page: controls without a name, images without text, headings,
// and text whose contrast against its background is below WCAG AA (4.5:1; 3:1 for large text).
() => {
  const problems = [];
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "");
  const visible = (el) => {
    const s = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    return s.visibility !== "hidden" && s.display !== "none" && r.width > 1 && r.height > 1;
  };
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!visible(el)) continue;
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!named) problems.push("control without a label: " + describe(el) + " name=" + el.name);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!visible(el)) continue;
    const name = (el.innerText || "").trim() || el.getAttribute("aria-label") || el.getAttribute("title");
    if (!name) problems.push("button or link without text: " + describe(el));
  }
  for (const el of document.querySelectorAll("img, canvas")) {
    if (el.tagName === "IMG" && el.getAttribute("alt") === null) problems.push("image without alt: " + describe(el));
    if (el.tagName === "CANVAS" && !el.getAttribute("aria-label") && !el.textContent.trim())
      problems.push("canvas without a text equivalent: " + describe(el));
  }
  if (document.querySelectorAll("h1").length !== 1) problems.push("pages need exactly one h1");
  const parse = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
    const p = m[1].split(",").map((x) => parseFloat(x)); return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  for (const el of document.querySelectorAll("body *")) {
    if (!visible(el) || ["SCRIPT", "STYLE", "CANVAS"].includes(el.tagName)) continue;
    const text = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!text) continue;
    const s = getComputedStyle(el);
    const fg = parse(s.color);
    if (!fg) continue;
    const l1 = lum(fg), l2 = lum(background(el));
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const large = parseFloat(s.fontSize) >= 24 || (parseFloat(s.fontSize) >= 18.66 && parseInt(s.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}: ${describe(el)} "${el.textContent.trim().slice(0, 40)}"`);
  }
  if (document.scrollingElement.scrollWidth > window.innerWidth + 1)
    problems.push(`wider than the screen: ${document.scrollingElement.scrollWidth}px on ${window.innerWidth}px`);
  return problems;
}
