/**
 * Building DOM nodes without markup strings: text always goes in as text nodes, so nothing a task or a
 * backend reports can become HTML.
 */

export type Child = Node | string | number | null | undefined | false
type Attrs = Record<string, string | number | boolean | null | undefined | ((event: Event) => void)>

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue
    if (typeof value === 'function') node.addEventListener(name.slice(2), value)
    else node.setAttribute(name, value === true ? '' : String(value))
  }
  append(node, children)
  return node
}

export function append(node: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    node.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child)
  }
}

/** Replace what `node` holds. */
export function fill(node: Node, ...children: Child[]): void {
  while (node.firstChild) node.removeChild(node.firstChild)
  append(node, children)
}

/** A definition list of label → value pairs; each value carries `data-figure` so tests and scripts can find it. */
export function figures(items: Array<[label: string, key: string, value: Child]>): HTMLDListElement {
  return h(
    'dl',
    { class: 'figures' },
    ...items.map(([label, key, value]) => h('div', { class: 'figure' }, h('dt', {}, label), h('dd', { 'data-figure': key }, value))),
  )
}

/** A table with a caption; rows are cells already formatted. */
export function table(caption: string, head: string[], rows: Child[][], attrs: Attrs = {}): HTMLElement {
  return h(
    'div',
    { class: 'scroll', ...attrs },
    h(
      'table',
      {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, ...head.map((text) => h('th', { scope: 'col' }, text)))),
      // data-label: on a narrow screen each row becomes a card of label/value lines (style.css).
      h('tbody', {}, ...rows.map((cells) => h('tr', {}, ...cells.map((cell, i) => h('td', { 'data-label': head[i] }, cell))))),
    ),
  )
}

/**
 * Run `update` (which rebuilds part of `root`) without losing the keyboard focus: the element that had it
 * is found again in the new content by its id, link target or figure name.
 */
export function keepingFocus(root: HTMLElement, update: () => void): void {
  const active = document.activeElement
  const key =
    active instanceof HTMLElement && root.contains(active)
      ? active.id
        ? `#${CSS.escape(active.id)}`
        : active.getAttribute('href') !== null
          ? `[href="${CSS.escape(active.getAttribute('href') as string)}"]`
          : active.dataset.figure
            ? `[data-figure="${CSS.escape(active.dataset.figure)}"]`
            : undefined
      : undefined
  update()
  if (key) root.querySelector<HTMLElement>(key)?.focus()
}

/** Say something to screen readers without moving focus. */
export function announce(text: string): void {
  const region = document.getElementById('announce')
  if (region) region.textContent = text
}

export interface Question {
  title: string
  text: string
  /** The label of the button that goes ahead. */
  confirm: string
  onConfirm: () => void
}

export interface ConfirmDialog {
  element: HTMLDialogElement
  /** Open the modal with this question; the focus starts on the button that backs out. */
  ask(question: Question): void
  isOpen(): boolean
}

/**
 * The one modal that asks before a change: Escape or the `keep` button closes it without a request;
 * `danger` marks the confirming button as destructive. `id` prefixes the title's and text's ids.
 */
export function confirmDialog(options: { id: string; keep: string; danger?: boolean }): ConfirmDialog {
  const title = h('h2', { id: `${options.id}-title` })
  const text = h('p', { id: `${options.id}-text` })
  let confirmed: () => void = () => {}
  const keep = h('button', { type: 'button', autofocus: true, onclick: () => element.close() }, options.keep)
  const confirm = h('button', {
    type: 'button',
    class: options.danger ? 'danger' : undefined,
    onclick: () => {
      element.close()
      confirmed()
    },
  })
  const element: HTMLDialogElement = h(
    'dialog',
    { 'aria-labelledby': `${options.id}-title`, 'aria-describedby': `${options.id}-text` },
    title,
    text,
    h('div', { class: 'actions' }, keep, confirm),
  )
  return {
    element,
    ask(question) {
      confirmed = question.onConfirm
      title.textContent = question.title
      text.textContent = question.text
      confirm.textContent = question.confirm
      element.showModal()
      keep.focus()
    },
    isOpen: () => element.open,
  }
}
