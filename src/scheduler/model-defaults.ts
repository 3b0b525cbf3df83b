/**
 * Per-model defaults (`models.<provider>.<model>.temperature` and `.context`): the options a request to
 * that model gets on a backend of that provider (the backend's type, `ollama` or `openai`) when it does
 * not set them itself. The request's own value always wins; nothing configured, nothing added.
 *
 *   temperature → `options.temperature` (chat and generate; the OpenAI-compatible backend sends it as
 *                 `temperature`). Embeddings take no temperature.
 *   context     → `options.num_ctx` on Ollama backends (chat, generate, embed). The OpenAI API has no
 *                 per-request context window: for `openai` it is informational (what orch reports).
 *
 * Model names match as the router matches them: `llama3.2` is `llama3.2:latest`. When a provider lists
 * both spellings, their settings merge and the one spelled with its tag wins where both set a key.
 */
import type { ChatRequest, EmbedRequest, GenerateRequest, ModelOptions } from '../backends/types.ts'
import type { OrchConfig } from '../config/schema.ts'
import { normalizeModel } from './router.ts'

export interface ModelDefaults {
  temperature?: number
  context?: number
}

export type ModelCallKind = 'chat' | 'generate' | 'embed'
export type ModelRequest = ChatRequest | GenerateRequest | EmbedRequest

export class ModelDefaultsTable {
  /** provider → normalised model name → its defaults (only models with at least one set). */
  private readonly byProvider = new Map<string, Map<string, ModelDefaults>>()

  constructor(models: OrchConfig['models']) {
    for (const [provider, entries] of Object.entries(models)) {
      const table = new Map<string, ModelDefaults>()
      // Bare names first, so that the tagged spelling of the same model overrides them.
      const names = Object.keys(entries).sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')))
      for (const name of names) {
        const settings = entries[name]
        if (!settings) continue
        const temperature = settings.temperature
        const context = settings.context
        if (temperature === undefined && context === undefined) continue
        const key = normalizeModel(name)
        const merged: ModelDefaults = { ...table.get(key) }
        if (temperature !== undefined) merged.temperature = temperature
        if (context !== undefined) merged.context = context
        table.set(key, merged)
      }
      if (table.size > 0) this.byProvider.set(provider, table)
    }
  }

  /** The configured defaults of a model on backends of a provider, or undefined when none is set. */
  get(provider: string, model: string): ModelDefaults | undefined {
    const table = this.byProvider.get(provider)
    return table ? table.get(normalizeModel(model)) : undefined
  }

  /** Whether any provider sets a default for this model (false: every request passes through as it is). */
  has(model: string): boolean {
    if (typeof model !== 'string' || this.byProvider.size === 0) return false
    const key = normalizeModel(model)
    for (const table of this.byProvider.values()) if (table.has(key)) return true
    return false
  }

  /**
   * The request as a backend of `provider` is sent it: the options it leaves unset (absent or null) filled
   * from the defaults. The same object when there is nothing to add; never changes its argument.
   */
  apply<R extends ModelRequest>(kind: ModelCallKind, provider: string, request: R): R {
    if (typeof request.model !== 'string') return request
    const defaults = this.get(provider, request.model)
    if (!defaults) return request
    const options: ModelOptions = request.options ?? {}
    if (typeof options !== 'object' || Array.isArray(options)) return request
    const added: ModelOptions = {}
    if (kind !== 'embed' && defaults.temperature !== undefined && options.temperature == null) added.temperature = defaults.temperature
    if (provider === 'ollama' && defaults.context !== undefined && options.num_ctx == null) added.num_ctx = defaults.context
    if (Object.keys(added).length === 0) return request
    return { ...request, options: { ...options, ...added } }
  }
}
