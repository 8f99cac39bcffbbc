// Pieces every view uses: tables that sort and page (their state in the URL), filters, outcomes.
import { escapeHtml as h } from './hub.js'

export const PAGE_SIZES = [100, 500, 1000]

/** The current route's path and parameters (the part of the hash after '?'). */
export function currentRoute () {
  const [path, query] = location.hash.replace(/^#/, '').split('?')
  return { path: path || '/', params: new URLSearchParams(query || '') }
}

/** Put `params` into the address without re-rendering the view (a filter typed, a page turned). */
export function replaceParams (params) {
  const { path } = currentRoute()
  const query = params.toString()
  history.replaceState(null, '', '#' + path + (query ? '?' + query : ''))
}

/** Read `limit` (one of PAGE_SIZES) and `page` (1-based) from the route's parameters. */
export function paging (params) {
  const limit = PAGE_SIZES.includes(Number(params.get('limit'))) ? Number(params.get('limit')) : PAGE_SIZES[0]
  const page = Math.max(1, Math.floor(Number(params.get('page')) || 1))
  return { limit, page, offset: (page - 1) * limit }
}

/**
 * A table. `columns`: [{ label, cell(row) -> html, sort?: field name, wide?: hidden on a phone }].
 * `rowHref(row)`: where Enter or a click on the row goes. `sort`/`desc`: the current order.
 */
export function table (rows, columns, { rowHref, sort, desc } = {}) {
  if (!rows.length) return '<p class="muted">None.</p>'
  const head = columns.map((c) => {
    const cls = c.wide ? ' class="wide"' : ''
    if (!c.sort) return `<th${cls} scope="col">${h(c.label)}</th>`
    const on = sort === c.sort
    const aria = on ? ` aria-sort="${desc ? 'descending' : 'ascending'}"` : ''
    const arrow = on ? (desc ? ' ▼' : ' ▲') : ''
    return `<th${cls} scope="col"${aria}><button type="button" class="sort" data-sort="${h(c.sort)}">${h(c.label)}${arrow}</button></th>`
  }).join('')
  const body = rows.map((row) => {
    const target = rowHref ? rowHref(row) : null
    const attrs = target ? ` class="row-link" tabindex="0" data-href="${h(target)}"` : ''
    return `<tr${attrs}>` + columns.map((c) => `<td${c.wide ? ' class="wide"' : ''}>${c.cell(row)}</td>`).join('') + '</tr>'
  }).join('')
  return `<div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`
}

/** "101–200 of 616" with previous / next buttons and the page size. */
export function pager (total, count, { limit, page, offset }) {
  const last = Math.max(1, Math.ceil(total / limit))
  const sizes = PAGE_SIZES.map((n) => `<option${n === limit ? ' selected' : ''}>${n}</option>`).join('')
  // A page past the end (an old link, rows gone since) shows none of the total, and "previous" goes to the last page.
  const range = count ? `${offset + 1}–${offset + count}` : '0'
  return `<nav class="pager" aria-label="pages">
    <span class="count" data-total="${h(total)}">${h(range)} of ${h(total)}</span>
    <button type="button" data-page="${Math.min(page - 1, last)}"${page <= 1 ? ' disabled' : ''}>‹ previous</button>
    <span class="muted">page ${h(page)} of ${h(last)}</span>
    <button type="button" data-page="${page + 1}"${page >= last ? ' disabled' : ''}>next ›</button>
    <label>per page <select data-limit>${sizes}</select></label>
  </nav>`
}

/**
 * Wire a list box: sort headers, pager buttons and page size change `params` (kept in the URL) and
 * call `reload()`. Returns nothing; the box's HTML is replaced by each reload.
 */
export function wireList (box, params, reload) {
  box.addEventListener('click', (event) => {
    const sortButton = event.target.closest('button[data-sort]')
    const pageButton = event.target.closest('button[data-page]')
    if (sortButton) {
      const field = sortButton.dataset.sort
      if (params.get('sort') === field) {
        if (params.get('desc')) params.delete('desc')
        else params.set('desc', '1')
      } else {
        params.set('sort', field)
        params.delete('desc')
      }
      params.delete('page')
    } else if (pageButton) {
      params.set('page', pageButton.dataset.page)
    } else {
      return
    }
    replaceParams(params)
    reload()
  })
  box.addEventListener('change', (event) => {
    if (!event.target.matches('select[data-limit]')) return
    params.set('limit', event.target.value)
    params.delete('page')
    replaceParams(params)
    reload()
  })
}

/** Enter on a focused row (or a click outside its links and buttons) opens it. */
export function wireRowLinks (root) {
  root.addEventListener('keydown', (event) => {
    const row = event.target.closest && event.target.closest('tr[data-href]')
    if (event.key === 'Enter' && row && event.target === row) location.hash = row.dataset.href.replace(/^#/, '')
  })
  root.addEventListener('click', (event) => {
    const row = event.target.closest('tr[data-href]')
    if (!row || event.target.closest('a, button, input, select, textarea, label')) return
    location.hash = row.dataset.href.replace(/^#/, '')
  })
}

/** Checkboxes for several values of one filter (`name`), checked from the URL's repeated values. */
export function checkboxes (name, values, chosen) {
  return `<fieldset class="choices"><legend>${h(name)}</legend>` + values.map((v) =>
    `<label><input type="checkbox" name="${h(name)}" value="${h(v)}"${chosen.includes(v) ? ' checked' : ''}> ${h(v)}</label>`
  ).join('') + '</fieldset>'
}

/** An outcome line: kind is applied | waiting | refused | info; the words say it, the colour helps. */
export function outcome (box, kind, text) {
  const label = { applied: 'Applied', waiting: 'Waiting', refused: 'Refused', info: '' }[kind] || ''
  box.className = `outcome o-${kind}`
  box.setAttribute('role', 'status')
  box.innerHTML = (label ? `<strong>${h(label)}:</strong> ` : '') + h(text)
}

/** A short date-time from the hub's UTC stamps. */
export function when (stamp) {
  return stamp ? String(stamp).replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : ''
}
