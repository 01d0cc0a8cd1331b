// A small, safe subset of Markdown built as DOM nodes: paragraphs, fenced code blocks,
// `inline code` and **bold**. Model text reaches the page only through text nodes, never as HTML.

const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+.#-]*)\s*$/;
const INLINE = /`([^`\n]+)`|\*\*(\S(?:[^\n]*?\S)?)\*\*/g;

/** Renders `text` into a new DocumentFragment. An unclosed fence runs to the end (mid-stream). */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const lines = text.split(/\r\n|\r|\n/);
  let paragraph = [];
  const flush = () => {
    if (paragraph.length === 0) return;
    const p = document.createElement("p");
    appendInline(p, paragraph.join("\n"));
    fragment.append(p);
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i += 1) {
    const open = FENCE.exec(lines[i]);
    if (open === null) {
      if (lines[i].trim() === "") flush();
      else paragraph.push(lines[i]);
      continue;
    }
    flush();
    const body = [];
    for (i += 1; i < lines.length && !closes(lines[i], open[1]); i += 1) body.push(lines[i]);
    fragment.append(codeBlock(body.join("\n"), open[2]));
  }
  flush();
  return fragment;
}

function closes(line, marker) {
  const close = FENCE.exec(line);
  return close !== null && close[2] === "" && close[1][0] === marker[0] &&
    close[1].length >= marker.length;
}

function codeBlock(text, language) {
  const pre = document.createElement("pre");
  const code = document.createElement("code");
  code.textContent = text;
  if (language) {
    pre.dataset.lang = language;
    pre.setAttribute("aria-label", `${language} code`);
  }
  pre.tabIndex = 0; // a wide block scrolls sideways: let the keyboard reach it
  pre.append(code);
  return pre;
}

function appendInline(parent, text) {
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) parent.append(text.slice(last, match.index));
    const node = document.createElement(match[1] !== undefined ? "code" : "strong");
    node.textContent = match[1] ?? match[2];
    parent.append(node);
    last = match.index + match[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
}
