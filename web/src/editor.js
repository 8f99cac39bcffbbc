// The collaborative manifest editor: CodeMirror 6 bound to the hub's room by y-codemirror.next.
// The room's text is the Y.Text named "manifest"; saves and their results travel as State Hub messages.
// Loaded as its own chunk (main.js imports it only for #/edit/...), so no other view loads yjs.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { EditorView, basicSetup } from 'codemirror'
import { EditorState } from '@codemirror/state'
import { StreamLanguage } from '@codemirror/language'
import { toml } from '@codemirror/legacy-modes/mode/toml'
import { lintGutter, setDiagnostics } from '@codemirror/lint'
import { yCollab } from 'y-codemirror.next'
import { mayAct, me, notAllowed } from './auth.js'
import { STATEHUB_MESSAGE, api, colorFor, currentActor, encodeHubMessage, escapeHtml as h, href, items, readHubMessage, setActor } from './hub.js'

const TEXT_NAME = 'manifest'

/** What a new manifest starts from: every line commented but what makes it valid as it is. */
export const TEMPLATES = {
  'statehub.toml': (slug) => `# The repo manifest (docs/format.md, "Repo manifest"). Lines starting with # are comments.

[repo]
slug = "${slug}"            # how the hub names this repo: lower-case letters, digits, . _ -
# title = "What this repo is"
prefixes = []               # workplan id prefixes it owns, like ["OPS"] for OPS-WP-0001
# default_branch = "main"
`,
  'registry/fleet.toml': () => `# The fleet registry (docs/format.md, "Fleet registry"): machines, workloads, lanes.
# Uncomment and fill in; saving checks every entry and names the line of each problem.

# [[machines]]
# name = "railiance01"
# address = "203.0.113.10"
# role = "production-home"      # production-home | frozen-legacy | temporary-dev | build | ...
# notes = "first fleet node"

# [[workloads]]
# name = "forgejo"
# current_host = "coulombcore"
# target_host = "railiance01"
# wave = 1
# stateful = true
# state = "running"             # running | draining | migrated | promoted | retired

# [[lanes]]
# name = "ssh-to-core"
# from = "railiance01"
# to = "coulombcore"
# via = []                      # hops; a lane through a temporary-dev machine is a risk
# critical = true
`
}

/** Another client's colour goes into a style attribute: only `#rgb`/`#rrggbb` are taken, else the name's colour
 * (a colour such as `red;position:fixed;inset:0` would let one person in the room cover the others' page). */
function safeColor (color, name) {
  return /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i.test(String(color ?? '')) ? color : colorFor(String(name))
}

function askName (root, then) {
  root.innerHTML = `<h1>Who are you?</h1><section>
    <p class="muted">Your name shows to the others in the room and becomes the author of the commits you save.</p>
    <form id="who-form"><input id="who-name" placeholder="your name" required aria-label="your name"> <button class="primary">Continue</button></form></section>`
  root.querySelector('#who-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const name = root.querySelector('#who-name').value.trim()
    if (setActor(name)) then(name)
  })
}

/** The editor view for `doc` (`<slug>/<path>`); returns the function that leaves it. */
export function editorView (root, doc, params) {
  const session = me()
  const [slug, ...rest] = doc.split('/')
  const right = rest.join('/') === 'registry/fleet.toml' ? 'admin' : 'edit' // the fleet registry is an admin's
  if (!mayAct(slug, right)) { // the hub would refuse the socket: say why rather than stay "connecting"
    root.innerHTML = `<h1>${h(doc)}</h1><p class="bad" id="edit-refused" role="alert">${h(notAllowed(slug, right))}</p>
      <p><a href="${href('repos', slug)}">${h(slug)}</a></p>`
    return () => {}
  }
  if (session && session.tokens) return renderEditor(root, doc, session.actor, true) // the token's actor edits and saves
  const given = params.get('user')
  if (given) setActor(given)
  const user = given || currentActor()
  let stop = null
  if (user) stop = renderEditor(root, doc, user)
  else askName(root, (name) => { stop = renderEditor(root, doc, name) })
  return () => { if (stop) stop() }
}

export function renderEditor (root, doc, user, signedIn = false) {
  const [slug, ...rest] = doc.split('/')
  const path = rest.join('/')
  root.innerHTML = `
    <div class="editor-bar">
      <h1>${h(doc)}</h1>
      <div class="presence" id="presence"></div>
      <span id="connection" class="muted">connecting…</span>
      <button class="primary" id="save" title="Ctrl+S / ⌘S">Save</button>
    </div>
    <p class="muted"><a href="${href('repos', slug)}">${h(slug)}</a> · Edits are shared as you type; Save (Ctrl+S, ⌘S) validates and commits the file.</p>
    <div id="notice"></div>
    <div id="errors" role="alert" aria-live="assertive"></div>
    <div id="editor"></div>
    <div id="status" class="muted" role="status"></div>`
  const color = colorFor(user)
  let session = null
  let known = null

  const notice = (text) => {
    root.querySelector('#notice').innerHTML = text ? `<div class="notice">${h(text)}</div>` : ''
  }
  const showErrors = (errors) => {
    const box = root.querySelector('#errors')
    box.innerHTML = errors.length
      ? `<div class="error-list"><strong>Not saved: ${h(errors.length)} problem${errors.length > 1 ? 's' : ''}</strong><ul>${errors.map((e) =>
        `<li><button type="button" class="link" data-line="${h(e.line ?? '')}">line ${h(e.line ?? '?')}${e.column ? ', column ' + h(e.column) : ''}</button>: ${h(e.message)}</li>`).join('')}</ul></div>`
      : ''
    if (!session) return
    const { state } = session.view
    const diagnostics = errors.map((e) => {
      const line = state.doc.line(Math.min(Math.max(e.line || 1, 1), state.doc.lines))
      const from = Math.min(line.from + Math.max((e.column || 1) - 1, 0), line.to)
      return { from, to: Math.max(line.to, from), severity: 'error', message: e.message }
    })
    session.view.dispatch(setDiagnostics(state, diagnostics))
  }
  root.querySelector('#errors').addEventListener('click', (event) => {
    const target = event.target.closest('button[data-line]')
    if (!target || !session || !target.dataset.line) return
    const line = session.view.state.doc.line(Math.min(Number(target.dataset.line), session.view.state.doc.lines))
    session.view.dispatch({ selection: { anchor: line.from }, scrollIntoView: true })
    session.view.focus()
  })
  const renderPresence = () => {
    if (!session) return
    const people = [...session.provider.awareness.getStates().entries()]
      .filter(([, s]) => s.user && s.user.name)
      .map(([id, s]) => ({ name: String(s.user.name), color: safeColor(s.user.color, s.user.name), me: id === session.ydoc.clientID }))
    root.querySelector('#presence').innerHTML = people.map((p) =>
      `<span class="person" style="background:${h(p.color)}" data-name="${h(p.name)}">${h(p.name)}${p.me ? ' (you)' : ''}</span>`).join('')
  }
  const onHubMessage = (message) => {
    if (message.type === 'save-result') {
      const status = root.querySelector('#status')
      status.className = message.ok ? 'ok' : 'bad'
      status.textContent = (message.by ? `${message.by}: ` : '') + message.message
      showErrors(message.errors || [])
      if (message.ok) known = true
    } else if (message.type === 'resync') {
      notice(message.reason || 'The file changed since you last synced; loading it again.')
      stop()
      start()
    } else if (message.type === 'file-changed') {
      notice('The file changed on disk; that change is merged into the text above.')
    } else if (message.type === 'file-missing') {
      notice('The file is missing on disk; the text here is kept, and saving is refused until the file is back.')
    } else if (message.type === 'error') {
      notice(message.message)
    }
  }
  const save = () => {
    const ws = session && session.provider.ws
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      root.querySelector('#status').textContent = 'Not connected to the hub; your edits are kept and sent when it is back.'
      return
    }
    root.querySelector('#status').className = 'muted'
    root.querySelector('#status').textContent = 'Saving…'
    ws.send(encodeHubMessage({ type: 'save' }))
  }
  // A new manifest starts from its template once the room has synced and nobody else is in it.
  const seed = () => {
    if (!session || known !== false) return
    const { ytext, provider } = session
    const others = [...provider.awareness.getStates().keys()].filter((id) => id !== session.ydoc.clientID)
    if (ytext.length === 0 && others.length === 0 && TEMPLATES[path]) {
      ytext.insert(0, TEMPLATES[path](slug))
      notice('This file does not exist yet: it starts from a template, and saving creates it (and its directory).')
    }
    known = true
  }
  api('/sync').then((rooms) => {
    const listed = items(rooms)
    const room = listed.find((d) => d.doc === doc)
    const complete = !rooms || rooms.total == null || rooms.total <= listed.length
    const refused = !room && complete
      ? `${doc} is not a file the editor opens: it edits statehub.toml and registry/fleet.toml of a registered repo (see the repo's page)`
      : room && room.error
    if (refused) { // the hub refuses the socket before it opens, which a browser cannot read: say why, stop retrying
      stop()
      root.querySelector('#connection').textContent = 'not connected'
      root.querySelector('#save').disabled = true
      root.querySelector('#errors').innerHTML = `<p class="bad" id="edit-refused">${h(refused)}</p>`
      return
    }
    known = room ? room.exists : true
    if (session && session.provider.synced) seed()
  }).catch(() => { known = true })

  const start = () => {
    const ydoc = new Y.Doc()
    const ytext = ydoc.getText(TEXT_NAME)
    const base = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/sync`
    const provider = new WebsocketProvider(base, doc, ydoc, { params: signedIn ? {} : { user }, disableBc: true })
    provider.messageHandlers[STATEHUB_MESSAGE] = (_encoder, decoder) => onHubMessage(readHubMessage(decoder))
    provider.awareness.setLocalStateField('user', { name: user, color, colorLight: color + '33' })
    const view = new EditorView({
      state: EditorState.create({
        doc: ytext.toString(),
        extensions: [basicSetup, StreamLanguage.define(toml), lintGutter(),
          yCollab(ytext, provider.awareness, { undoManager: new Y.UndoManager(ytext) })]
      }),
      parent: root.querySelector('#editor')
    })
    provider.awareness.on('change', renderPresence)
    provider.on('status', ({ status }) => {
      const box = root.querySelector('#connection')
      if (box) box.textContent = status
    })
    provider.on('sync', (synced) => { if (synced) seed() })
    session = { ydoc, ytext, provider, view }
    window.statehubEditor = session // for tests and the console
    renderPresence()
  }
  const stop = () => {
    if (!session) return
    session.provider.destroy()
    session.view.destroy()
    session.ydoc.destroy()
    session = null
  }
  const onKey = (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 's') {
      event.preventDefault()
      save()
    }
  }
  document.addEventListener('keydown', onKey)
  root.querySelector('#save').addEventListener('click', save)
  start()
  return () => {
    document.removeEventListener('keydown', onKey)
    stop()
  }
}
