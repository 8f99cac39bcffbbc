// The pages of one thing: dashboard, repo, workplan, task, canon document, fleet.
import { api, escapeHtml as h, HubError, href, items, statusBadge, TASK_STATUSES } from './hub.js'
import { table, when } from './ui.js'
import { EVENT_COLUMNS, TASK_COLUMNS, WORKPLAN_COLUMNS } from './lists.js'
import { taskActions, workplanActions } from './actions.js'
import { mayAct } from './auth.js'
import { dependencyGraph } from './graph.js'

const markdown = () => import('./markdown.js') // its own chunk: only pages with a body load it

const optional = (promise) => promise.catch(() => null)

// -- dashboard -------------------------------------------------------------------------------------

/** The right a manifest's editor needs: the fleet registry is an admin's, like a role change. */
const editRight = (d) => (d.path === 'registry/fleet.toml' ? 'admin' : 'edit')

/** A link to a manifest's editor, or its name alone when this session may not edit it. */
function editorLink (d, label) {
  return mayAct(d.repo, editRight(d)) ? `<a href="${href('edit', ...d.doc.split('/'))}">${h(label)}</a>` : `${h(label)} <span class="muted">(read only)</span>`
}

/** Rooms open now (who is in them) and rooms holding a draft not saved to the file. */
function roomsSection (rooms) {
  const live = items(rooms).filter((d) => d.people.length || d.unsaved)
  return `<section aria-label="open rooms and drafts"><h2>Rooms and drafts <span class="muted">${h(live.length)}</span></h2>${live.length
    ? table(live, [
      { label: 'manifest', cell: (d) => editorLink(d, d.doc) },
      { label: 'in the room', cell: (d) => (d.people.length ? d.people.map((p) => `<span class="person-name">${h(p)}</span>`).join(', ') : '<span class="muted">nobody</span>') },
      { label: 'draft', cell: (d) => (d.unsaved ? '<span class="status s-draft">✎ unsaved draft</span>' : '<span class="status s-done">✓ saved</span>') }
    ], { rowHref: (d) => (mayAct(d.repo, editRight(d)) ? href('edit', ...d.doc.split('/')) : null) })
    : '<p class="muted">Nobody is editing a manifest, and no draft is waiting.</p>'}</section>`
}

export async function dashboardView (root) {
  const counts = TASK_STATUSES.map((s) => api(`/tasks?status=${s}&limit=1`).then((p) => [s, p.total]))
  const [repos, plans, events, readiness, rooms, readyToStart, ...byStatus] = await Promise.all([
    api('/repos'), api('/workplans?status=active&limit=10'), optional(api('/events?desc=true&limit=8')),
    optional(api('/fleet/readiness')), optional(api('/sync')), api('/tasks?ready=true&status=todo&limit=1'), ...counts
  ])
  const shownPlans = items(plans).length
  const repoRows = items(repos)
  root.innerHTML = `<h1>Dashboard</h1>
    <section aria-label="tasks by status"><h2>Tasks</h2><ul class="tiles">${byStatus.map(([s, n]) =>
      `<li><a href="${href('tasks')}?status=${encodeURIComponent(s)}">${statusBadge(s)} <strong>${h(n)}</strong></a></li>`).join('')}
      <li><a href="${href('tasks')}?ready=true&status=todo">ready to start <strong>${h(readyToStart.total)}</strong></a></li></ul></section>
    ${readiness ? `<section><h2>Fleet</h2><p>${readiness.ready ? '<span class="status s-done">✓ ready</span>' : '<span class="status s-blocked">✕ not ready</span>'}
      ${h(readiness.question)} <a href="${href('fleet')}">Fleet view</a> (${h(readiness.blockers.length)} blockers)</p></section>` : ''}
    ${rooms ? roomsSection(rooms) : ''}
    <section><h2>Repos <span class="muted">${h(repoRows.length)}</span></h2>${table(repoRows, [
      { label: 'repo', cell: (r) => `<a href="${href('repos', r.slug)}">${h(r.slug)}</a><br><span class="muted">${h(r.title || '')}</span>` },
      { label: 'file errors', cell: (r) => (r.error_count ? `<span class="status s-blocked">✕ ${h(r.error_count)} error${r.error_count === 1 ? '' : 's'}</span>` : '<span class="status s-done">✓ none</span>') },
      { label: 'workplans', cell: (r) => `<a href="${href('workplans')}?repo=${encodeURIComponent(r.slug)}">${h(r.workplan_count)}</a>` }
    ], { rowHref: (r) => href('repos', r.slug) })}</section>
    <section><h2>Active workplans <span class="muted" id="active-count">${shownPlans < plans.total ? `${h(shownPlans)} of ${h(plans.total)}` : h(plans.total)}</span> <a class="more" href="${href('workplans')}?status=active">all</a></h2>
      ${table(items(plans), WORKPLAN_COLUMNS, { rowHref: (w) => href('workplans', w.id) })}</section>
    ${events ? `<section><h2>Latest events <a class="more" href="${href('events')}">all</a></h2>${table(items(events), EVENT_COLUMNS)}</section>` : ''}`
}

// -- repo ------------------------------------------------------------------------------------------

export async function repoView (root, slug) {
  const [repo, diagnostics, sweep, rooms, plans] = await Promise.all([
    api('/repos/' + encodeURIComponent(slug)),
    optional(api(`/state/diagnostics?repo=${encodeURIComponent(slug)}&probe=false`)),
    optional(api('/sweeps/latest')),
    optional(api('/sync')),
    api(`/workplans?repo=${encodeURIComponent(slug)}&limit=100`)
  ])
  const diagnosis = diagnostics ? diagnostics.repos.find((r) => r.repo === slug) : null
  const swept = sweep ? sweep.repos.find((r) => r.repo === slug) : null
  const manifests = rooms ? items(rooms).filter((d) => d.repo === slug) : []
  root.innerHTML = `<h1>${h(repo.slug)} <span class="muted">${h(repo.title || '')}</span></h1>
    <p class="muted">${h(repo.path)} · prefixes ${h(repo.prefixes.join(', ') || 'none')} · ${h(repo.counts.workplans)} workplans,
      ${h(repo.counts.tasks)} tasks, ${h(repo.counts.canon)} canon documents ·
      <a href="${href('tasks')}?repo=${encodeURIComponent(slug)}">tasks</a> · <a href="${href('canon')}?repo=${encodeURIComponent(slug)}">canon</a> ·
      <a href="${href('events')}?repo=${encodeURIComponent(slug)}">events</a></p>
    <section><h2>File errors <span class="muted">${h(repo.error_count)}</span></h2>${table(repo.errors, [
      { label: 'file', cell: (e) => `<code>${h(e.path)}${e.line ? ':' + h(e.line) : ''}</code>` },
      { label: 'line', cell: (e) => h(e.line ?? '') },
      { label: 'problem', cell: (e) => h(e.message) }
    ])}</section>
    <section><h2>Workplans <span class="muted">${h(plans.total)}</span>
      <a class="more" href="${href('workplans')}?repo=${encodeURIComponent(slug)}">all, filtered</a></h2>
      ${table(items(plans), WORKPLAN_COLUMNS, { rowHref: (w) => href('workplans', w.id) })}</section>
    <section><h2>Diagnostics</h2>${diagnosis ? `${table(diagnosis.problems, [
      { label: 'problem', cell: (p) => h(p.message || p.problem || JSON.stringify(p)) },
      { label: 'what to do', cell: (p) => h(p.remedy || '') },
      { label: 'stops writes', cell: (p) => (p.stops_writes ? 'yes' : 'no') }
    ])}${diagnosis.waiting.length ? `<h3>Events waiting</h3>${table(diagnosis.waiting, [
      { label: 'why', cell: (w) => h(w.reason || 'not tried yet') }, { label: 'events', cell: (w) => h(w.count) },
      { label: 'oldest', cell: (w) => h(when(w.oldest_accepted_at)) }])}` : ''}` : '<p class="muted">Not available.</p>'}</section>
    <section><h2>Last sweep</h2>${swept ? `<p>${swept.in_step ? '<span class="status s-done">✓ in step</span>' : '<span class="status s-blocked">✕ not in step</span>'}
      ${h(swept.push || '')} <span class="muted">${h(when(sweep.finished_at))}</span></p>${table((swept.problems || []).map((p) => ({ p })), [
      { label: 'finding', cell: (x) => h(typeof x.p === 'string' ? x.p : (x.p.message || JSON.stringify(x.p))) }])}${swept.error ? `<p class="bad">${h(swept.error)}</p>` : ''}`
      : '<p class="muted">No sweep of this repo yet.</p>'}</section>
    <section><h2>Manifests</h2>${table(manifests, [
      { label: 'file', cell: (d) => editorLink(d, d.path) },
      { label: 'state', cell: (d) => (d.exists ? 'exists' : 'new: starts from a template') + (d.error ? ` · <span class="bad">${h(d.error)}</span>` : '') },
      { label: 'editing now', cell: (d) => h(d.people.join(', ')) + (d.unsaved ? ' (unsaved edits)' : '') }
    ])}</section>`
}

// -- workplan --------------------------------------------------------------------------------------

export async function workplanView (root, id, { refresh }) {
  const [overview, claimable, md] = await Promise.all([
    api(`/workplans/${encodeURIComponent(id)}/overview`),
    optional(api(`/tasks?workplan=${encodeURIComponent(id)}&claimable=true&limit=1000`)),
    markdown()
  ])
  const plan = overview.workplan
  const free = new Set(items(claimable).map((t) => t.ref))
  const [before, progress, after] = md.splitProgress(plan.body)
  const p = overview.progress
  const nodes = plan.tasks.map((t) => ({ ...t, outside: false }))
  const edges = plan.tasks.flatMap((t) => t.depends_on.map((d) => [t.ref, d]))
  for (const d of overview.outside) nodes.push(d.task ? { ...d.task, outside: true } : { ref: d.ref, title: '', status: '', outside: true, missing: true })
  for (const d of overview.dependents) {
    if (!nodes.some((n) => n.ref === d.task.ref)) nodes.push({ ...d.task, outside: true })
    edges.push([d.task.ref, d.on])
  }
  root.innerHTML = `<h1>${h(plan.id)} <span class="title">${h(plan.title)}</span></h1>
    <p>${statusBadge(plan.status)} · owner ${h(plan.owner || 'none')} · <a href="${href('repos', plan.repo)}">${h(plan.repo)}</a>
      <code>${h(plan.path)}</code>${plan.related.length ? ' · related: ' + plan.related.map((r) => `<a href="${href('workplans', r)}">${h(r)}</a>`).join(', ') : ''}
      · <a href="${href('events')}?workplan=${encodeURIComponent(plan.id)}">events</a></p>
    <section aria-label="progress"><h2>Progress ${h(p.percent)}%</h2>
      <div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${h(p.percent)}" aria-label="done of tasks not cancelled">
        <div style="width:${Number(p.percent) || 0}%"></div></div>
      <p class="muted">${h(p.done)} of ${h(p.total - p.by_status.cancelled)} done · ${TASK_STATUSES.filter((s) => s !== 'done').map((s) => `${h(p.by_status[s])} ${h(s)}`).join(' · ')}</p></section>
    <section><h2>Tasks <span class="muted">${h(plan.tasks.length)}</span></h2>${table(plan.tasks, [
      ...TASK_COLUMNS.filter((c) => c.label !== 'repo').map((c) => ({ ...c, sort: undefined })),
      { label: 'claim', cell: (t) => (free.has(t.ref) ? 'free to claim' : t.status === 'in-progress' ? 'taken' : '') },
      { label: 'depends on', wide: true, cell: (t) => t.depends_on.map((d) => `<a href="${href('tasks', d)}">${h(d)}</a>`).join(', ') }
    ], { rowHref: (t) => href('tasks', t.ref) })}</section>
    <div id="act"></div>
    <section><h2>Dependencies</h2>${dependencyGraph(nodes, edges)}</section>
    <section class="markdown" aria-label="workplan body">${md.renderMarkdown(before + '\n' + after)}</section>
    <section class="markdown" aria-label="progress notes"><h2>Progress notes</h2>${progress.trim() ? md.renderMarkdown(progress) : '<p class="muted">None yet.</p>'}</section>`
  workplanActions(root.querySelector('#act'), plan, refresh)
}

// -- task ------------------------------------------------------------------------------------------

export async function taskView (root, ref, { refresh }) {
  const [links, claim, events] = await Promise.all([
    api(`/tasks/${encodeURIComponent(ref)}/links`),
    optional(api(`/tasks/${encodeURIComponent(ref)}/claim`)),
    api(`/events?task=${encodeURIComponent(ref)}&desc=true&limit=100`)
  ])
  const t = links.task
  const holder = claim && claim.held ? `held by ${claim.actor} until ${when(claim.lease_expires_at)}` : claim && claim.claimable ? 'free to claim' : claim ? `not claimable: ${claim.why_not || ''}` : ''
  const commits = items(events).filter((e) => e.commit)
  root.innerHTML = `<h1>${h(t.ref)} <span class="title">${h(t.title)}</span></h1>
    <p>${statusBadge(t.status)} · owner ${h(t.owner || 'none')} · ${t.ready ? 'ready to start' : 'not ready'} · ${h(holder)}</p>
    <p class="muted">in <a href="${href('workplans', t.workplan)}">${h(t.workplan)}</a> · <a href="${href('repos', t.repo)}">${h(t.repo)}</a> <code>${h(t.path)}</code></p>
    <div id="act"></div>
    <section><h2>Depends on <span class="muted">${h(links.dependencies.length)}</span></h2>${table(links.dependencies, [
      { label: 'task', cell: (d) => (d.task ? `<a href="${href('tasks', d.ref)}">${h(d.ref)}</a>` : `${h(d.ref)} <span class="bad">(no such task)</span>`) },
      { label: 'title', cell: (d) => h(d.task ? d.task.title : '') },
      { label: 'status', cell: (d) => (d.task ? statusBadge(d.task.status) : '') },
      { label: 'repo', wide: true, cell: (d) => h(d.task ? d.task.repo : '') }
    ], { rowHref: (d) => (d.task ? href('tasks', d.ref) : null) })}</section>
    <section><h2>Needed by <span class="muted">${h(links.dependents.length)}</span></h2>${table(links.dependents, TASK_COLUMNS, { rowHref: (d) => href('tasks', d.ref) })}</section>
    <section><h2>Events <span class="muted">${h(events.total)}</span> <a class="more" href="${href('events')}?task=${encodeURIComponent(ref)}">all</a></h2>${table(items(events), EVENT_COLUMNS)}</section>
    <section><h2>Commits <span class="muted">${h(commits.length)}</span></h2>${table(commits, [
      { label: 'commit', cell: (e) => `<code>${h(e.commit)}</code>` }, { label: 'applied', cell: (e) => h(when(e.applied_at)) },
      { label: 'event', cell: (e) => `${h(e.kind)} by ${h(e.event.actor || '')}` }])}</section>`
  taskActions(root.querySelector('#act'), t, refresh)
}

// -- canon -----------------------------------------------------------------------------------------

export async function canonPage (root, id, params) {
  const repo = params.get('repo')
  const [doc, md] = await Promise.all([
    api(`/canon/${encodeURIComponent(id)}` + (repo ? `?repo=${encodeURIComponent(repo)}` : '')), markdown()
  ])
  root.innerHTML = `<h1>${h(doc.id)} <span class="title">${h(doc.title)}</span></h1>
    <p>${statusBadge(doc.status)} · ${h(doc.kind)} · ${h(doc.date || '')} · <a href="${href('repos', doc.repo)}">${h(doc.repo)}</a> <code>${h(doc.path)}</code>
    ${doc.supersedes.length ? ' · supersedes ' + doc.supersedes.map((s) => h(s)).join(', ') : ''}</p>
    <section class="markdown">${md.renderMarkdown(doc.body)}</section>`
}

// -- fleet -----------------------------------------------------------------------------------------

const GATE_ITEMS = [
  ['overlay_repo', 'overlay repo', (g) => g.overlay_repo],
  ['stages_proven', 'stages proven', (g) => g.stages_proven.length ? g.stages_proven.join(', ') : null],
  ['backup_restore_drill', 'backup restore drill', (g) => g.backup_restore_drill],
  ['canary_observed', 'canary observed', (g) => (g.canary_observed ? 'yes' : null)],
  ['operator_approval', 'operator approval', (g) => g.operator_approval],
  ['image', 'image', (g) => g.image]
]

function gateCell (w) {
  if (!w.gate && !w.gate_unmet.length) return '<span class="muted">no gate</span>'
  const met = w.gate ? GATE_ITEMS.filter(([, , value]) => value(w.gate)).map(([, label, value]) => `<li class="met">✓ met: ${h(label)} (${h(value(w.gate))})</li>`) : []
  const unmet = w.gate_unmet.map((u) => `<li class="unmet">✕ missing: ${h(u)}</li>`)
  const exception = w.gate && w.gate.exception ? [`<li>exception: ${h(w.gate.exception)}</li>`] : []
  return `<ul class="gate">${[...met, ...unmet, ...exception].join('')}</ul>`
}

function laneWords (l) {
  const hops = [l.from, ...l.via, l.to].join(' → ')
  const risks = l.risks.map((r) => `${r.machine} (${r.role}) at the ${r.position} must not carry a critical lane`)
  return { hops, risks: risks.length ? risks.join('; ') : 'no risk' }
}

export async function fleetView (root, params) {
  const repo = params.get('repo')
  const q = repo ? `?repo=${encodeURIComponent(repo)}` : ''
  let machines, workloads, lanes, readiness
  try {
    [machines, workloads, lanes, readiness] = await Promise.all([
      api('/fleet/machines' + q), api('/fleet/workloads' + q), api('/fleet/lanes' + q), api('/fleet/readiness' + q)
    ])
  } catch (error) {
    if (!(error instanceof HubError)) throw error
    root.innerHTML = `<h1>Fleet</h1><p class="${error.status === 404 ? 'muted' : 'bad'}">${h(error.message)}</p>`
    return
  }
  const roles = new Map()
  for (const m of machines.items) (roles.get(m.role) || roles.set(m.role, []).get(m.role)).push(m)
  const waves = new Map()
  for (const w of workloads.items) {
    const key = w.wave ?? 'no wave'
    ;(waves.get(key) || waves.set(key, []).get(key)).push(w)
  }
  const waveKeys = [...waves.keys()].sort((a, b) => (a === 'no wave') - (b === 'no wave') || a - b)
  root.innerHTML = `<h1>Fleet <span class="muted">${h(machines.repo)}</span></h1>
    <section><h2>Readiness</h2><p>${readiness.ready ? '<span class="status s-done">✓ ready</span>' : '<span class="status s-blocked">✕ not ready</span>'} ${h(readiness.question)}</p>
      <p class="muted">Switched off: ${h(readiness.switched_off.join(', ') || 'none')}</p>
      ${table(readiness.blockers, [{ label: 'blocker', cell: (b) => `${h(b.kind)} ${h(b.name)}` }, { label: 'machine', cell: (b) => h(b.machine) }, { label: 'why', cell: (b) => h(b.reason) }])}</section>
    <section><h2>Machines by role</h2>${[...roles.entries()].map(([role, list]) => `<h3>${h(role)} <span class="muted">${h(list.length)}</span></h3>
      <p class="muted">${h(list[0].rule)}</p>${table(list, [
        { label: 'machine', cell: (m) => `<strong>${h(m.name)}</strong>${m.address ? `<br><span class="muted">${h(m.address)}</span>` : ''}` },
        { label: 'allows', cell: (m) => Object.entries(m.allows).map(([k, v]) => `${v ? '✓' : '✕'} ${h(k.replace('_', ' '))}`).join('<br>') },
        { label: 'runs', cell: (m) => h(m.workloads.join(', ') || 'nothing') },
        { label: 'notes', wide: true, cell: (m) => h(m.notes || '') }])}`).join('')}</section>
    <section><h2>Workloads by drain wave</h2>${waveKeys.map((k) => `<h3>${k === 'no wave' ? 'No wave (last)' : `Wave ${h(k)}`}</h3>${table(waves.get(k), [
        { label: 'workload', cell: (w) => `<strong>${h(w.name)}</strong>${w.stateful ? '<br><span class="muted">stateful</span>' : ''}` },
        { label: 'state', cell: (w) => statusBadge(w.state) },
        { label: 'move', cell: (w) => `${h(w.current_host)} → ${h(w.target_host || '(no target)')}` },
        { label: 'gate evidence', cell: gateCell },
        { label: 'owner', wide: true, cell: (w) => h(w.owner || '') }])}`).join('')}</section>
    <section><h2>Lanes <span class="muted">${h(lanes.at_risk)} at risk of ${h(lanes.total)}</span></h2>${table(lanes.items, [
        { label: 'lane', cell: (l) => `<strong>${h(l.name)}</strong>${l.critical ? '<br>critical' : ''}` },
        { label: 'hops', cell: (l) => h(laneWords(l).hops) },
        { label: 'risks', cell: (l) => (l.risks.length ? `<span class="bad">✕ ${h(laneWords(l).risks)}</span>` : '✓ no risk') }])}</section>`
}
