// Acting from the page: events and claims through the same API every client uses, each with its
// outcome shown where it was asked for (applied, waiting and why, refused and why).
import { api, currentActor, escapeHtml as h, isActor, newEventKey, setActor, TASK_STATUSES } from './hub.js'
import { outcome } from './ui.js'
import { mayAct, notAllowed } from './auth.js'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const FOLLOW_FOR_MS = 15000

// The last outcome shown for each subject (a task ref, a workplan id): an applied event refreshes
// the view, and the new view shows the outcome again where the old one showed it. The view can be
// redrawn (live) while an action is in flight: its answer goes to the box on the page now, not to
// the one the action started from.
const remembered = new Map()
const boxes = new Map()

/** An outcome box for `subject`: shows (and remembers) each outcome, starting with the last one. */
function outcomeBox (box, subject) {
  boxes.set(subject, box)
  const show = (kind, text) => {
    remembered.set(subject, [kind, text])
    const current = boxes.get(subject)
    outcome(current && current.isConnected ? current : box, kind, text)
  }
  const last = remembered.get(subject)
  if (last) outcome(box, ...last)
  return show
}

/** Follow event `key` in the write buffer until it is applied or refused (or stop waiting). */
async function follow (key, show, first, onApplied) {
  let { state, reason, commit } = first
  const until = Date.now() + FOLLOW_FOR_MS
  let pause = 100
  while (true) {
    if (state === 'applied') {
      show('applied', commit ? `committed as ${commit.slice(0, 10)} (event ${key})` : `the file already said so (event ${key})`)
      if (onApplied) onApplied()
      return
    }
    if (state === 'rejected') {
      show('refused', reason || 'the hub could not apply it')
      return
    }
    show('waiting', reason ? `${reason} (event ${key})` : `in the write buffer, not applied yet (event ${key})`)
    if (Date.now() > until) return
    await sleep(pause)
    pause = Math.min(pause * 2, 1000)
    try {
      ({ state, reason, commit } = await api('/events/' + encodeURIComponent(key)))
    } catch (error) {
      show('waiting', `could not ask about event ${key}: ${error.message}`)
      return
    }
  }
}

/** Send one event (its key and actor filled in) and `show(kind, text)` what became of it. */
export async function sendEvent (event, show, onApplied) {
  const actor = currentActor()
  if (!isActor(actor)) {
    show('refused', 'say who you are first (the name box at the top)')
    return
  }
  show('info', 'sending…')
  try {
    const answer = await api('/events?each=true', { method: 'POST', body: { key: newEventKey(), actor, ...event } })
    const [result] = answer.results
    if (result.result === 'rejected') {
      show('refused', result.reason || 'the hub refused the event')
      return
    }
    await follow(result.key, show, { state: result.state, reason: result.reason, commit: null }, onApplied)
  } catch (error) {
    show('refused', error.message)
  }
}

/** POST a claim or a release; the event it makes is followed like any other. */
async function claimCall (ref, what, body, show, onApplied) {
  const actor = currentActor()
  if (!isActor(actor)) {
    show('refused', 'say who you are first (the name box at the top)')
    return
  }
  show('info', `${what}…`)
  try {
    const answer = await api(`/tasks/${encodeURIComponent(ref)}/${what}`, { method: 'POST', body: { actor, ...body } })
    await follow(answer.key, show, { state: 'pending', reason: null, commit: null }, onApplied)
  } catch (error) {
    show('refused', error.message)
  }
}

/** In place of the actions a token does not allow: no buttons, the reason in words. */
function readOnly (box, what, repo) {
  box.innerHTML = `<section class="actions" aria-label="act on this ${what}"><h2>Act</h2>
    <p class="muted" id="read-only">${h(notAllowed(repo))}</p></section>`
}

/** The task's actions: status, note, claim, release. */
export function taskActions (box, task, onApplied) {
  if (!mayAct(task.repo)) return readOnly(box, 'task', task.repo)
  box.innerHTML = `<section class="actions" aria-label="act on this task"><h2>Act</h2>
    <form data-act="status"><label>status <select name="status">${TASK_STATUSES.map((s) =>
      `<option${s === task.status ? ' selected' : ''}>${h(s)}</option>`).join('')}</select></label>
      <button>Set status</button></form>
    <form data-act="note"><label class="grow">progress note <input name="note" required maxlength="2000" placeholder="what happened"></label>
      <button>Add note</button></form>
    <form data-act="claim"><label>lease <select name="lease"><option value="1800">30 min</option><option value="7200" selected>2 h</option><option value="28800">8 h</option></select></label>
      <button>Claim</button>
      <label>release as <select name="release"><option>todo</option><option>done</option><option>blocked</option></select></label>
      <button type="button" data-release>Release</button></form>
    <p class="outcome" aria-live="polite"></p></section>`
  const result = outcomeBox(box.querySelector('.outcome'), task.ref)
  const ids = { workplan: task.workplan, task: task.id, repo: task.repo }
  box.querySelector('[data-act=status]').addEventListener('submit', (event) => {
    event.preventDefault()
    sendEvent({ kind: 'task.status', ...ids, status: event.target.status.value }, result, onApplied)
  })
  box.querySelector('[data-act=note]').addEventListener('submit', (event) => {
    event.preventDefault()
    sendEvent({ kind: 'progress.note', ...ids, note: event.target.note.value }, result, onApplied)
  })
  const claimForm = box.querySelector('[data-act=claim]')
  claimForm.addEventListener('submit', (event) => {
    event.preventDefault()
    claimCall(task.ref, 'claim', { lease_s: Number(claimForm.lease.value) }, result, onApplied)
  })
  claimForm.querySelector('[data-release]').addEventListener('click', () => {
    claimCall(task.ref, 'release', { status: claimForm.release.value }, result, onApplied)
  })
}

/** The workplan's actions: add a task, add a progress note (none when the session may not write). */
export function workplanActions (box, plan, onApplied) {
  if (!mayAct(plan.repo)) return readOnly(box, 'workplan', plan.repo)
  box.innerHTML = `<section class="actions" aria-label="act on this workplan"><h2>Act</h2>
    <form data-act="add"><label>id <input name="id" required size="5" placeholder="T09" pattern="T[0-9]+"></label>
      <label class="grow">title <input name="title" required maxlength="500"></label>
      <label>owner <input name="owner" size="10"></label>
      <label>depends on <input name="depends" size="14" placeholder="T01, T02"></label>
      <button>Add task</button></form>
    <form data-act="note"><label class="grow">progress note <input name="note" required maxlength="2000"></label>
      <button>Add note</button></form>
    <p class="outcome" aria-live="polite"></p></section>`
  const result = outcomeBox(box.querySelector('.outcome'), plan.id)
  box.querySelector('[data-act=add]').addEventListener('submit', (event) => {
    event.preventDefault()
    const form = event.target
    const event_ = { kind: 'task.add', repo: plan.repo, workplan: plan.id, task: form.id.value.trim(), title: form.title.value.trim() }
    if (form.owner.value.trim()) event_.owner = form.owner.value.trim()
    const depends = form.depends.value.split(',').map((s) => s.trim()).filter(Boolean)
    if (depends.length) event_.depends_on = depends
    sendEvent(event_, result, onApplied)
  })
  box.querySelector('[data-act=note]').addEventListener('submit', (event) => {
    event.preventDefault()
    sendEvent({ kind: 'progress.note', repo: plan.repo, workplan: plan.id, note: event.target.note.value }, result, onApplied)
  })
}

/** The "you are" box in the header: the name events and claims are sent as. */
export function whoBox (box) {
  const render = () => {
    const name = currentActor()
    box.innerHTML = `<form class="who"><label>you are <input name="who" value="${h(name)}" size="10" placeholder="your name" aria-label="your name"></label></form>`
    box.querySelector('form').addEventListener('submit', (event) => event.preventDefault())
    box.querySelector('input').addEventListener('change', (event) => {
      const value = event.target.value.trim()
      event.target.setCustomValidity(value && !setActor(value) ? 'letters, digits and . _ @ + -, starting with a letter or digit' : '')
      event.target.reportValidity()
    })
  }
  render()
}
