// The collaborative manifest editor: CodeMirror 6 bound to the hub's room by y-codemirror.next.
// The room's text is the Y.Text named "manifest"; saves and their results travel as State Hub messages.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { EditorView, basicSetup } from 'codemirror'
import { EditorState } from '@codemirror/state'
import { StreamLanguage } from '@codemirror/language'
import { toml } from '@codemirror/legacy-modes/mode/toml'
import { lintGutter, setDiagnostics } from '@codemirror/lint'
import { yCollab } from 'y-codemirror.next'
import { STATEHUB_MESSAGE, colorFor, encodeHubMessage, escapeHtml as h, readHubMessage } from './hub.js'

const TEXT_NAME = 'manifest'

export function renderEditor (root, doc, user, signedIn = false) {
  root.innerHTML = `
    <div class="editor-bar">
      <h1>${h(doc)}</h1>
      <div class="presence" id="presence"></div>
      <span id="connection" class="muted">connecting…</span>
      <button class="primary" id="save">Save</button>
    </div>
    <div id="notice"></div>
    <div id="editor"></div>
    <div id="status" class="muted">Edits are shared as you type; Save validates and commits the file.</div>
    <ul id="errors"></ul>`
  const color = colorFor(user)
  let session = null

  const notice = (text) => {
    root.querySelector('#notice').innerHTML = text ? `<div class="notice">${h(text)}</div>` : ''
  }
  const showErrors = (errors) => {
    root.querySelector('#errors').innerHTML = errors.map((e) =>
      `<li>line ${h(e.line ?? '?')}, column ${h(e.column ?? '?')}: ${h(e.message)}</li>`).join('')
    if (!session) return
    const { state } = session.view
    const diagnostics = errors.map((e) => {
      const line = state.doc.line(Math.min(Math.max(e.line || 1, 1), state.doc.lines))
      const from = Math.min(line.from + Math.max((e.column || 1) - 1, 0), line.to)
      return { from, to: Math.max(line.to, from), severity: 'error', message: e.message }
    })
    session.view.dispatch(setDiagnostics(state, diagnostics))
  }
  const renderPresence = () => {
    if (!session) return
    const people = [...session.provider.awareness.getStates().entries()]
      .filter(([, s]) => s.user && s.user.name)
      .map(([id, s]) => ({ name: s.user.name, color: s.user.color || colorFor(s.user.name), me: id === session.ydoc.clientID }))
    root.querySelector('#presence').innerHTML = people.map((p) =>
      `<span class="person" style="background:${h(p.color)}" data-name="${h(p.name)}">${h(p.name)}${p.me ? ' (you)' : ''}</span>`).join('')
  }
  const onHubMessage = (message) => {
    if (message.type === 'save-result') {
      const status = root.querySelector('#status')
      status.className = message.ok ? 'ok' : 'bad'
      status.textContent = (message.by ? `${message.by}: ` : '') + message.message
      showErrors(message.errors || [])
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
    session = { ydoc, provider, view }
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

  root.querySelector('#save').addEventListener('click', () => {
    const ws = session && session.provider.ws
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      root.querySelector('#status').textContent = 'Not connected to the hub; your edits are kept and sent when it is back.'
      return
    }
    ws.send(encodeHubMessage({ type: 'save' }))
  })
  start()
  return stop
}
