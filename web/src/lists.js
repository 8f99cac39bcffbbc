// The list views: tasks, workplans, canon, events, search. Each keeps its filters, sort and page in
// the URL (reload and share keep them), pages with its total and sorts on the hub (the API does it).
import { api, escapeHtml as h, href, items, statusBadge, TASK_STATUSES, WORKPLAN_STATUSES } from './hub.js'
import { checkboxes, pager, paging, replaceParams, table, when, wireList } from './ui.js'

let reposCache = null
/** The registered repos' slugs (asked once per page load). */
export async function repoSlugs () {
  if (!reposCache) reposCache = api('/repos').then((r) => items(r).map((x) => x.slug)).catch(() => [])
  return reposCache
}

function repoSelect (slugs, chosen) {
  return `<label>repo <select name="repo"><option value="">any</option>${slugs.map((s) =>
    `<option${s === chosen ? ' selected' : ''}>${h(s)}</option>`).join('')}</select></label>`
}

/**
 * A list page: `filters(params, slugs)` is the filter form's HTML (field names are the URL's and the
 * API's), `apiQuery(params)` the API parameters they make, `columns` and `rowHref` the table's.
 */
async function listPage (root, params, spec) {
  const slugs = spec.repoFilter === false ? [] : await repoSlugs()
  root.innerHTML = `<h1>${h(spec.title)}</h1>
    <form class="filters" role="search" aria-label="filter ${h(spec.title)}">${spec.filters(params, slugs)}</form>
    <div class="list" aria-live="polite"></div>`
  const form = root.querySelector('form.filters')
  const box = root.querySelector('.list')
  const reload = async () => {
    const { limit, page, offset } = paging(params)
    const query = spec.apiQuery(params)
    query.set('limit', limit)
    query.set('offset', offset)
    if (params.get('sort') && spec.sortable !== false) query.set('sort', params.get('sort'))
    if (params.get('desc')) query.set('desc', 'true')
    try {
      const answer = await api(spec.endpoint + '?' + query)
      const rows = items(answer)
      box.innerHTML = pager(answer.total, rows.length, { limit, page, offset }) +
        table(rows, spec.columns, { rowHref: spec.rowHref, sort: params.get('sort'), desc: !!params.get('desc') })
    } catch (error) {
      box.innerHTML = `<p class="bad" role="alert">${h(error.message)}</p>`
    }
  }
  let typing = null
  const fromForm = () => {
    for (const name of new Set([...form.elements].map((e) => e.name).filter(Boolean))) params.delete(name)
    for (const [name, value] of new FormData(form)) if (String(value).trim()) params.append(name, String(value).trim())
    params.delete('page')
    replaceParams(params)
    reload()
  }
  form.addEventListener('change', fromForm)
  form.addEventListener('input', (event) => {
    if (event.target.type !== 'text' && event.target.type !== 'search') return
    clearTimeout(typing)
    typing = setTimeout(fromForm, 200)
  })
  form.addEventListener('submit', (event) => { event.preventDefault(); fromForm() })
  wireList(box, params, reload)
  await reload()
  return reload
}

function pick (params, names) {
  const query = new URLSearchParams()
  for (const name of names) for (const value of params.getAll(name)) if (value) query.append(name, value)
  return query
}

// -- tasks -----------------------------------------------------------------------------------------

export const TASK_COLUMNS = [
  { label: 'task', sort: 'ref', cell: (t) => `<a href="${href('tasks', t.ref)}">${h(t.ref)}</a>` },
  { label: 'title', sort: 'title', cell: (t) => h(t.title) },
  { label: 'status', sort: 'status', cell: (t) => statusBadge(t.status) },
  { label: 'owner', sort: 'owner', cell: (t) => h(t.owner || '') },
  { label: 'ready', sort: 'ready', cell: (t) => (t.ready ? 'ready' : '') },
  { label: 'repo', sort: 'repo', wide: true, cell: (t) => `<a href="${href('repos', t.repo)}">${h(t.repo)}</a>` }
]

export function tasksView (root, params) {
  return listPage(root, params, {
    title: 'Tasks',
    endpoint: '/tasks',
    filters: (p, slugs) => checkboxes('status', TASK_STATUSES, p.getAll('status')) +
      `<label>owner starts with <input type="text" name="owner_prefix" value="${h(p.get('owner_prefix') || '')}" size="10"></label>
       <label><input type="checkbox" name="ready" value="true"${p.get('ready') ? ' checked' : ''}> ready to start</label>
       ${repoSelect(slugs, p.get('repo'))}
       <label>workplan <input type="text" name="workplan" value="${h(p.get('workplan') || '')}" size="12" placeholder="OPS-WP-0001"></label>`,
    apiQuery: (p) => pick(p, ['status', 'owner_prefix', 'ready', 'repo', 'workplan']),
    columns: TASK_COLUMNS,
    rowHref: (t) => href('tasks', t.ref)
  })
}

// -- workplans -------------------------------------------------------------------------------------

export const WORKPLAN_COLUMNS = [
  { label: 'workplan', sort: 'id', cell: (w) => `<a href="${href('workplans', w.id)}">${h(w.id)}</a>` },
  { label: 'title', sort: 'title', cell: (w) => h(w.title) },
  { label: 'status', sort: 'status', cell: (w) => statusBadge(w.status) },
  { label: 'owner', sort: 'owner', cell: (w) => h(w.owner || '') },
  { label: 'tasks', sort: 'task_count', cell: (w) => h(w.task_count) },
  { label: 'repo', sort: 'repo', wide: true, cell: (w) => `<a href="${href('repos', w.repo)}">${h(w.repo)}</a>` }
]

export function workplansView (root, params) {
  return listPage(root, params, {
    title: 'Workplans',
    endpoint: '/workplans',
    filters: (p, slugs) => checkboxes('status', WORKPLAN_STATUSES, p.getAll('status')) +
      `<label>owner starts with <input type="text" name="owner_prefix" value="${h(p.get('owner_prefix') || '')}" size="10"></label>
       ${repoSelect(slugs, p.get('repo'))}`,
    apiQuery: (p) => pick(p, ['status', 'owner_prefix', 'repo']),
    columns: WORKPLAN_COLUMNS,
    rowHref: (w) => href('workplans', w.id)
  })
}

// -- canon -----------------------------------------------------------------------------------------

const canonHref = (c) => href('canon', c.id) + '?repo=' + encodeURIComponent(c.repo)

export function canonView (root, params) {
  return listPage(root, params, {
    title: 'Canon',
    endpoint: '/canon',
    filters: (p, slugs) => `${repoSelect(slugs, p.get('repo'))}
      <label>kind <select name="kind"><option value="">any</option>${['adr', 'standard', 'runbook', 'note'].map((k) =>
        `<option${k === p.get('kind') ? ' selected' : ''}>${k}</option>`).join('')}</select></label>`,
    apiQuery: (p) => pick(p, ['repo', 'kind']),
    columns: [
      { label: 'id', sort: 'id', cell: (c) => `<a href="${canonHref(c)}">${h(c.id)}</a>` },
      { label: 'title', sort: 'title', cell: (c) => h(c.title) },
      { label: 'kind', sort: 'kind', cell: (c) => h(c.kind) },
      { label: 'status', sort: 'status', cell: (c) => statusBadge(c.status) },
      { label: 'date', sort: 'date', wide: true, cell: (c) => h(c.date || '') },
      { label: 'repo', sort: 'repo', wide: true, cell: (c) => h(c.repo) }
    ],
    rowHref: canonHref
  })
}

// -- events ----------------------------------------------------------------------------------------

export const EVENT_COLUMNS = [
  { label: 'accepted', cell: (e) => h(when(e.accepted_at)) },
  { label: 'kind', cell: (e) => h(e.kind) },
  { label: 'what', cell: (e) => eventWhat(e) },
  { label: 'by', cell: (e) => h(e.event.actor || '') },
  { label: 'state', cell: (e) => statusBadge(e.state) + (e.reason ? `<br><span class="muted">${h(e.reason)}</span>` : '') },
  { label: 'commit', wide: true, cell: (e) => (e.commit ? `<code>${h(e.commit.slice(0, 10))}</code>` : '') }
]

function eventWhat (e) {
  const ev = e.event || {}
  const ref = ev.workplan && ev.task ? `${ev.workplan}-${ev.task}` : ev.workplan
  const link = ref ? `<a href="${ev.task ? href('tasks', ref) : href('workplans', ref)}">${h(ref)}</a>` : h(e.repo)
  const detail = ev.status ? ` → ${h(ev.status)}` : ev.note ? `: ${h(ev.note)}` : ev.title ? `: ${h(ev.title)}` : ''
  return link + detail
}

export function eventsView (root, params) {
  if (!params.has('order')) params.set('order', 'newest')
  return listPage(root, params, {
    title: 'Events',
    endpoint: '/events',
    sortable: false,
    filters: (p, slugs) => `<label>state <select name="state"><option value="">any</option>${['pending', 'applied', 'rejected'].map((s) =>
        `<option${s === p.get('state') ? ' selected' : ''}>${s}</option>`).join('')}</select></label>
      ${repoSelect(slugs, p.get('repo'))}
      <label>kind <input type="text" name="kind" value="${h(p.get('kind') || '')}" size="12" placeholder="task.status"></label>
      <label>task <input type="text" name="task" value="${h(p.get('task') || '')}" size="16" placeholder="OPS-WP-0001-T02"></label>
      <label>order <select name="order"><option value="newest"${p.get('order') !== 'oldest' ? ' selected' : ''}>newest first</option>
        <option value="oldest"${p.get('order') === 'oldest' ? ' selected' : ''}>oldest first</option></select></label>`,
    apiQuery: (p) => {
      const query = pick(p, ['state', 'repo', 'kind', 'task', 'workplan'])
      if (p.get('order') !== 'oldest') query.set('desc', 'true')
      return query
    },
    columns: EVENT_COLUMNS
  })
}

// -- search ----------------------------------------------------------------------------------------

function hitHref (hit) {
  if (hit.kind === 'task') return href('tasks', hit.ref)
  if (hit.kind === 'workplan') return href('workplans', hit.ref)
  return href('canon', hit.ref) + '?repo=' + encodeURIComponent(hit.repo)
}

/** The snippet with its **matched** words bold; everything else escaped. */
function snippet (text) {
  return h(text).replace(/\*\*(.+?)\*\*/g, '<mark>$1</mark>')
}

export function searchView (root, params) {
  if (!params.get('q')) {
    root.innerHTML = '<h1>Search</h1><p class="muted">Type words in the search box at the top.</p>'
    return null
  }
  return listPage(root, params, {
    title: `Search: ${params.get('q')}`,
    endpoint: '/search',
    sortable: false,
    filters: (p, slugs) => `<input type="hidden" name="q" value="${h(p.get('q'))}">${repoSelect(slugs, p.get('repo'))}
      <label>kind <select name="kind"><option value="">any</option>${['workplan', 'task', 'canon'].map((k) =>
        `<option${k === p.get('kind') ? ' selected' : ''}>${k}</option>`).join('')}</select></label>`,
    apiQuery: (p) => pick(p, ['q', 'repo', 'kind']),
    columns: [
      { label: 'hit', cell: (hit) => `<a href="${hitHref(hit)}">${h(hit.ref)}</a><br><span class="muted">${h(hit.kind)}</span>` },
      { label: 'title', cell: (hit) => `${h(hit.title)}<br><span class="snippet">${snippet(hit.snippet)}</span>` },
      { label: 'repo', wide: true, cell: (hit) => h(hit.repo) }
    ],
    rowHref: hitHref
  })
}
