// A workplan's dependency graph as SVG: its tasks and the tasks of other workplans (any repo) its
// tasks depend on or that depend on them, in columns by depth (a task sits right of what it needs).
// Every node is a link to its task, and says its status in words.
import { escapeHtml as h, href } from './hub.js'

const W = 190
const H = 44
const GAP_X = 46
const GAP_Y = 14

/**
 * `nodes`: [{ ref, title, status, outside (bool), missing (bool) }]; `edges`: [[from ref, to ref]]
 * meaning "from depends on to". Returns SVG markup (everything escaped).
 */
export function dependencyGraph (nodes, edges) {
  if (!nodes.length) return '<p class="muted">No tasks.</p>'
  const byRef = new Map(nodes.map((n) => [n.ref, n]))
  const needs = new Map(nodes.map((n) => [n.ref, []]))
  for (const [from, to] of edges) if (byRef.has(from) && byRef.has(to)) needs.get(from).push(to)
  const depth = new Map()
  const visiting = new Set()
  const depthOf = (ref) => {
    if (depth.has(ref)) return depth.get(ref)
    if (visiting.has(ref)) return 0 // a cycle: the file check reports it; draw it flat
    visiting.add(ref)
    const d = needs.get(ref).reduce((m, r) => Math.max(m, depthOf(r) + 1), 0)
    visiting.delete(ref)
    depth.set(ref, d)
    return d
  }
  const columns = []
  for (const n of nodes) {
    const d = depthOf(n.ref)
    ;(columns[d] = columns[d] || []).push(n)
  }
  const place = new Map()
  columns.forEach((col, x) => col.forEach((n, y) => place.set(n.ref, { x: 10 + x * (W + GAP_X), y: 10 + y * (H + GAP_Y) })))
  const width = 20 + columns.length * (W + GAP_X) - GAP_X
  const height = 20 + Math.max(...columns.map((c) => c.length)) * (H + GAP_Y) - GAP_Y
  const lines = []
  for (const [from, to] of edges) {
    const a = place.get(to)
    const b = place.get(from)
    if (!a || !b) continue
    const x1 = a.x + W
    const y1 = a.y + H / 2
    const x2 = b.x
    const y2 = b.y + H / 2
    const mid = (x1 + x2) / 2
    lines.push(`<path class="edge" d="M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 4},${y2}" marker-end="url(#arrow)"/>`)
  }
  const boxes = nodes.map((n) => {
    const { x, y } = place.get(n.ref)
    const title = n.title.length > 28 ? n.title.slice(0, 27) + '…' : n.title
    const status = n.missing ? 'not found' : n.status
    const cls = `node s-${String(status).replace(/[^a-z-]/g, '')}${n.outside ? ' outside' : ''}`
    const body = `<rect class="${cls}" x="${x}" y="${y}" width="${W}" height="${H}" rx="6"/>
      <text x="${x + 8}" y="${y + 17}" class="ref">${h(n.ref)}</text>
      <text x="${x + 8}" y="${y + 34}" class="label">${h(status)} · ${h(title)}</text>`
    return n.missing ? `<g>${body}</g>` : `<a href="${href('tasks', n.ref)}" aria-label="${h(n.ref)}: ${h(status)}">${body}</a>`
  }).join('')
  return `<div class="scroll"><svg class="graph" role="img" aria-label="dependency graph" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>
    ${lines.join('')}${boxes}</svg></div>
    <p class="muted">An arrow goes from a task to the task that needs it; dashed boxes are tasks of other workplans.</p>`
}
