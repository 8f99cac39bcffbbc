// The dashboard: repos with error counts, workplans, tasks with filters, canon, fleet tables.
import { escapeHtml as h, getJSON, items } from './hub.js'

function table (rows, columns) {
  if (!rows.length) return '<p class="muted">None.</p>'
  const head = columns.map(([label]) => `<th>${h(label)}</th>`).join('')
  const body = rows.map((row) => '<tr>' + columns.map(([, cell]) => `<td>${cell(row)}</td>`).join('') + '</tr>').join('')
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`
}

function genericTable (rows) {
  if (!rows.length) return '<p class="muted">None.</p>'
  const keys = Object.keys(rows[0]).filter((k) => typeof rows[0][k] !== 'object' || Array.isArray(rows[0][k]))
  return table(rows, keys.map((k) => [k, (r) => h(Array.isArray(r[k]) ? r[k].join(', ') : r[k])]))
}

export async function renderDashboard (root) {
  const [repos, workplans, canon, docs] = await Promise.all([
    getJSON('/repos'), getJSON('/workplans?limit=500'), getJSON('/canon?limit=500'), getJSON('/sync')
  ])
  const editable = items(docs)
  root.innerHTML = `
    <h1>Dashboard</h1>
    <section id="repos"><h2>Repos</h2>${table(items(repos), [
      ['repo', (r) => `<strong>${h(r.slug)}</strong><br><span class="muted">${h(r.title || '')}</span>`],
      ['errors', (r) => `<span class="badge ${r.error_count ? 'bad' : ''}">${h(r.error_count)}</span>`],
      ['workplans', (r) => h(r.workplan_count)],
      ['edit together', (r) => editable.filter((d) => d.repo === r.slug).map((d) =>
        `<a href="#/edit/${h(d.doc)}">${h(d.path)}</a>${d.exists ? '' : ' <span class="muted">(new)</span>'}` +
        (d.people.length ? ` <span class="badge">${h(d.people.join(', '))}</span>` : '')).join('<br>')]
    ])}</section>
    <section id="workplans"><h2>Workplans</h2>${table(items(workplans), [
      ['id', (w) => `<strong>${h(w.id)}</strong>`], ['title', (w) => h(w.title)], ['status', (w) => h(w.status)],
      ['owner', (w) => h(w.owner || '')], ['repo', (w) => h(w.repo)], ['tasks', (w) => h(w.task_count)]
    ])}</section>
    <section id="tasks"><h2>Tasks</h2>
      <div class="filters">
        <label>status <select id="f-status"><option value="">any</option>
          ${['todo', 'in-progress', 'blocked', 'done', 'cancelled'].map((s) => `<option>${s}</option>`).join('')}</select></label>
        <label>owner <input id="f-owner" placeholder="anyone" size="12"></label>
        <label><input type="checkbox" id="f-ready"> ready to start</label>
      </div>
      <div id="task-table"></div>
    </section>
    <section id="canon"><h2>Canon</h2>${table(items(canon), [
      ['id', (c) => `<strong>${h(c.id)}</strong>`], ['title', (c) => h(c.title)], ['kind', (c) => h(c.kind)],
      ['status', (c) => h(c.status)], ['repo', (c) => h(c.repo)]
    ])}</section>
    <div id="fleet"></div>`
  const status = root.querySelector('#f-status')
  const owner = root.querySelector('#f-owner')
  const ready = root.querySelector('#f-ready')
  const refreshTasks = async () => {
    const query = new URLSearchParams({ limit: '500' })
    if (status.value) query.set('status', status.value)
    if (owner.value.trim()) query.set('owner', owner.value.trim())
    if (ready.checked) query.set('ready', 'true')
    const tasks = items(await getJSON('/tasks?' + query))
    root.querySelector('#task-table').innerHTML = table(tasks, [
      ['task', (t) => `<strong>${h(t.ref)}</strong>`], ['title', (t) => h(t.title)], ['status', (t) => h(t.status)],
      ['owner', (t) => h(t.owner || '')], ['ready', (t) => (t.ready ? '✓' : '')]
    ])
  }
  status.addEventListener('change', refreshTasks)
  owner.addEventListener('input', refreshTasks)
  ready.addEventListener('change', refreshTasks)
  await Promise.all([refreshTasks(), renderFleet(root.querySelector('#fleet'))])
}

async function renderFleet (box) {
  // The fleet endpoints answer 200 only when a registry exists (and once that part of the hub is built).
  const probe = await fetch('/fleet/machines').catch(() => null)
  if (!probe || probe.status !== 200) return
  const [machines, workloads, lanes] = await Promise.all([
    probe.json(), getJSON('/fleet/workloads').catch(() => []), getJSON('/fleet/lanes').catch(() => [])
  ])
  box.innerHTML = `<section id="fleet-tables"><h2>Fleet</h2>
    <h3>Machines</h3>${genericTable(items(machines))}
    <h3>Workloads</h3>${genericTable(items(workloads))}
    <h3>Lanes</h3>${genericTable(items(lanes))}</section>`
}
