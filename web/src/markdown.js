// Markdown from repos, rendered safely: marked turns it into HTML, DOMPurify keeps only inert
// markup (no script, no event handler attributes, no javascript: URLs: its default URL rule), and every link
// that leaves the page opens with rel="noopener noreferrer". Repo content is untrusted (ADR-041).
import { marked } from 'marked'
import DOMPurify from 'dompurify'

marked.setOptions({ gfm: true, breaks: false })

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A' && node.getAttribute('href')) {
    const target = node.getAttribute('href')
    if (!target.startsWith('#')) {
      node.setAttribute('rel', 'noopener noreferrer nofollow')
      node.setAttribute('target', '_blank')
    }
  }
})

/** Markdown text as sanitized HTML, ready for innerHTML. */
export function renderMarkdown (text) {
  const raw = marked.parse(String(text ?? ''), { async: false })
  return DOMPurify.sanitize(raw, {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe', 'object', 'embed'],
    FORBID_ATTR: ['style']
  })
}

/**
 * A workplan body split at its `## Progress` section: `[before, progress, after]` (progress empty
 * when there is none). The Progress section runs to the next heading of level 2 or less.
 */
export function splitProgress (body) {
  const lines = String(body ?? '').split('\n')
  const start = lines.findIndex((l) => /^##\s+Progress\s*$/i.test(l))
  if (start < 0) return [body, '', '']
  let end = lines.length
  for (let i = start + 1; i < lines.length; i++) {
    if (/^#{1,2}\s/.test(lines[i])) { end = i; break }
  }
  return [lines.slice(0, start).join('\n'), lines.slice(start + 1, end).join('\n'), lines.slice(end).join('\n')]
}
