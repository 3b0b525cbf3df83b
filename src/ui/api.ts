/**
 * The dashboard's one way to the server: same-origin fetches of the JSON API, with the access token as a
 * Bearer header when one was given. The token lives in sessionStorage only (gone when the tab closes) and
 * is never put in a URL.
 */

const TOKEN_KEY = 'orch.token'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message)
  }

  /** The server wants a token, or a different one. */
  get unauthorized(): boolean {
    return this.status === 401
  }
}

export function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY)
  } catch {
    return null
  }
}

export function storeToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY)
  else sessionStorage.setItem(TOKEN_KEY, token)
}

export function authHeaders(extra: Record<string, string> = {}): Headers {
  const headers = new Headers(extra)
  const token = storedToken()
  if (token) headers.set('authorization', `Bearer ${token}`)
  return headers
}

/** The parsed JSON answer; an ApiError with the server's own message for any status but 2xx. */
export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(path, {
    ...init,
    headers: authHeaders({ accept: 'application/json' }),
    cache: 'no-store',
    credentials: 'omit',
  })
  const body = (await response.json().catch(() => null)) as { error?: { code?: string; message?: string } | string } | null
  if (!response.ok) {
    const error = body?.error
    const message = typeof error === 'string' ? error : (error?.message ?? `the server answered ${response.status}`)
    throw new ApiError(response.status, message, typeof error === 'object' ? error?.code : undefined)
  }
  return body as T
}
