/**
 * The dashboard's shell: navigation, the access-token prompt, and the page for the current hash. It
 * refuses to run inside a frame, so another site cannot overlay it and steer clicks onto its buttons.
 */
import { ApiError, storedToken, storeToken } from './api.ts'
import { fill, h } from './dom.ts'
import { HOME, PAGES } from './pages.ts'
import { matchPage, type PageContext } from './router.ts'

const main = document.getElementById('main') as HTMLElement
const nav = document.getElementById('nav') as HTMLElement
const session = document.getElementById('session') as HTMLElement
const auth = document.getElementById('auth') as HTMLElement
let leaving: AbortController | undefined
let first = true

if (window.top !== window.self) {
  fill(document.body, h('p', { role: 'alert' }, 'The orch dashboard does not run inside a frame: open it in a tab of its own.'))
} else {
  start()
}

function start(): void {
  fill(nav, ...PAGES.filter((p) => p.nav).map((p) => h('li', {}, h('a', { href: `#${p.path}`, 'data-nav': p.path }, p.nav as string))))
  document.querySelector('.skip')?.addEventListener('click', (event) => {
    event.preventDefault()
    main.focus()
  })
  window.addEventListener('hashchange', route)
  showSession()
  route()
}

function route(): void {
  const hash = location.hash
  if (!hash.startsWith('#/')) {
    location.replace(HOME)
    return
  }
  leaving?.abort()
  leaving = new AbortController()
  const target = hash.slice(1)
  const found = matchPage(PAGES, target)
  for (const link of nav.querySelectorAll('a')) {
    const path = link.getAttribute('data-nav') ?? ''
    const current = target === path || target.startsWith(`${path}/`) || target.startsWith(`${path}?`)
    if (current) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
  if (!found) {
    document.title = 'Not found · orch'
    fill(main, h('h1', { tabindex: '-1' }, 'No such page'), h('p', {}, h('a', { href: HOME }, 'Go to the overview')))
  } else {
    document.title = `${found.page.title(found.params)} · orch`
    const ctx: PageContext = {
      main,
      params: found.params,
      query: found.query,
      signal: leaving.signal,
      failed,
      navigate: (to) => {
        location.hash = to
      },
    }
    found.page.render(ctx)
  }
  // Moving focus to the new heading tells screen readers the page changed; not on the first load.
  if (!first) main.querySelector('h1')?.focus()
  first = false
}

function failed(error: unknown, where: HTMLElement): void {
  if (error instanceof ApiError && error.unauthorized) {
    askToken(error.message)
    return
  }
  const message = error instanceof Error ? error.message : String(error)
  fill(where, h('p', { role: 'alert' }, `The server could not answer: ${message}`))
}

/** The token form, shown whenever the server answers 401; a new token re-renders the page. */
function askToken(reason: string): void {
  if (auth.querySelector('form')) {
    const said = auth.querySelector('[data-reason]')
    if (said) said.textContent = `The server said: ${reason}.`
    return
  }
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' })
  const form = h(
    'form',
    {
      class: 'token',
      'aria-labelledby': 'token-title',
      onsubmit: (event: Event) => {
        event.preventDefault()
        storeToken(input.value.trim())
        fill(auth)
        showSession()
        route()
      },
    },
    h('h2', { id: 'token-title' }, 'Access token needed'),
    h(
      'p',
      {},
      'This orch serve asks for its access token (server.token). It is kept in this tab only (sessionStorage) and sent as a Bearer header.',
    ),
    h('p', { role: 'alert', 'data-reason': '' }, `The server said: ${reason}.`),
    h('label', { for: 'token' }, 'Access token'),
    input,
    h('button', { type: 'submit' }, 'Use this token'),
  )
  fill(auth, form)
  input.focus()
}

function showSession(): void {
  if (!storedToken()) {
    fill(session)
    return
  }
  fill(
    session,
    h('span', {}, 'Token set '),
    h(
      'button',
      {
        type: 'button',
        onclick: () => {
          storeToken(null)
          showSession()
          route()
        },
      },
      'Forget token',
    ),
  )
}
