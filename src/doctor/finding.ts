/** A doctor finding and its constructors; an error always carries the fix. */

export type FindingStatus = 'ok' | 'warning' | 'error'

export interface Finding {
  id: string
  status: FindingStatus
  title: string
  detail: string
  fix?: string
}

export const ok = (id: string, title: string, detail: string): Finding => ({ id, status: 'ok', title, detail })
export const warn = (id: string, title: string, detail: string, fix?: string): Finding => ({ id, status: 'warning', title, detail, fix })
export const fail = (id: string, title: string, detail: string, fix: string): Finding => ({ id, status: 'error', title, detail, fix })
