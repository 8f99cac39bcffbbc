// Live: the page follows the hub's change stream (GET /events/stream, canon/ADR-038) and draws the
// current view again when something it may show changed, without a reload. The browser's
// EventSource reconnects by itself and sends Last-Event-ID, so a dropped connection misses nothing.
// A view is not redrawn under a person's hands: while a field of the page has focus (a note being
// typed, a filter being changed) the redraw waits until it loses focus. The editor follows its room
// instead and is never redrawn from here.

const TYPES = 'task.,workplan.,canon.,repo.indexed,event.,claim.,room.,fleet.,sweep.' // reset and dropped come always
const QUIET_MS = 250 // changes come in bursts (a commit touches several rows): one redraw per burst
const EVERY_MS = 1000 // and at most one redraw a second, however busy the hub is

let source = null
let lastId = null // the id of the last message seen: where a new connection goes on from
let pending = false
let timer = null
let lastDraw = 0

function busy (root) {
  const active = document.activeElement
  return active !== null && root.contains(active) && active.matches('input, textarea, select, [contenteditable]')
}

function schedule (root, redraw, status) {
  pending = true
  if (timer !== null) return
  const wait = Math.max(QUIET_MS, EVERY_MS - (Date.now() - lastDraw))
  timer = setTimeout(() => {
    timer = null
    if (!pending) return
    if (document.body.dataset.view === 'edit') { pending = false; return }
    if (busy(root)) {
      status('changes waiting')
      root.addEventListener('focusout', () => setTimeout(() => schedule(root, redraw, status), 0), { once: true })
      return
    }
    pending = false
    lastDraw = Date.now()
    const scroll = window.scrollY
    redraw().then(() => { window.scrollTo(0, scroll); status('live') })
  }, wait)
}

/**
 * Follow the stream: `redraw()` draws the current view again (returns a promise); `indicator` is an
 * element that says whether the page is live. Returns a function that stops following.
 */
export function followHub (root, redraw, indicator) {
  stopFollowing()
  const status = (text) => {
    if (!indicator) return
    indicator.textContent = text === 'live' ? '● live' : '○ ' + text
    indicator.dataset.state = text === 'live' ? 'live' : 'waiting'
    indicator.title = text === 'live' ? 'This page follows the hub as it changes' : text
  }
  if (typeof EventSource === 'undefined') return () => {}
  const since = lastId === null ? '' : '&since=' + encodeURIComponent(lastId)
  source = new EventSource('/events/stream?types=' + encodeURIComponent(TYPES) + since)
  source.addEventListener('open', () => status('live'))
  source.addEventListener('error', () => {
    status('reconnecting')
    // A stream refused or ended because the session ended (sign-out elsewhere, the token revoked or
    // expired) looks like any lost connection here: ask the hub whether the session still stands;
    // main.js shows the sign-in when it does not.
    window.dispatchEvent(new Event('statehub:signed-out'))
  })
  const changed = (message) => {
    if (message.lastEventId) lastId = message.lastEventId
    schedule(root, redraw, status)
  }
  for (const type of ['task.changed', 'workplan.changed', 'canon.changed', 'repo.indexed',
    'event.accepted', 'event.applied', 'event.waiting', 'event.rejected', 'claim.won', 'claim.renewed',
    'claim.released', 'claim.expired', 'room.saved', 'room.changed', 'fleet.changed', 'sweep.finished', 'reset']) {
    source.addEventListener(type, changed)
  }
  // The hub ended this stream (it is stopping, or this page fell behind): connect again from the
  // last id seen; EventSource would not, as the answer ended normally.
  source.addEventListener('dropped', () => {
    status('reconnecting')
    setTimeout(() => followHub(root, redraw, indicator), 1000)
  })
  return stopFollowing
}

export function stopFollowing () {
  if (source !== null) { source.close(); source = null }
  if (timer !== null) { clearTimeout(timer); timer = null }
  pending = false
}
