/**
 * One GGUF model loaded with node-llama-cpp, generating for up to `parallel` requests at once: each request
 * takes one sequence of a single context, and node-llama-cpp evaluates the sequences that have work in one
 * batch (continuous batching: a request that arrives joins the next batch; one that ends leaves it). A
 * request that finds every sequence busy waits, first come first served, until one frees or it is aborted.
 *
 * Each request starts from an empty sequence (the server keeps no conversation state), generates until an
 * end-of-generation token, a stop string, `num_predict` tokens or the end of its context, and reports the
 * token counts and durations Ollama's API reports.
 */
import type { ChatHistoryItem, Llama, LlamaContext, LlamaContextSequence, LlamaEmbeddingContext, LlamaModel, Token } from 'node-llama-cpp'
import { type GgufInfo, readGguf } from './gguf.ts'
import type { NodeLlamaCppModule } from './llama.ts'

export interface ModelSettings {
  path: string
  /** The name clients use. */
  name: string
  gpuLayers: 'auto' | number
  /** 0: node-llama-cpp's choice (the machine's math cores). */
  threads: number
  contextSize: 'auto' | number
  parallel: number
}

/** The sampling options of Ollama's `options` object that the engine applies. */
export interface Sampling {
  temperature?: number | undefined
  top_k?: number | undefined
  top_p?: number | undefined
  min_p?: number | undefined
  seed?: number | undefined
  num_predict?: number | undefined
  repeat_penalty?: number | undefined
  repeat_last_n?: number | undefined
  stop?: string[] | undefined
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

export type Prompt = { kind: 'chat'; messages: ChatMessage[] } | { kind: 'raw'; text: string }

export interface Generation {
  text: string
  /** Ollama's done_reason: stop (an end token or stop string) or length (num_predict or the context). */
  doneReason: 'stop' | 'length'
  promptTokens: number
  evalTokens: number
  /** Nanoseconds, as Ollama reports them. */
  promptEvalNs: number
  evalNs: number
  totalNs: number
  /** Set when the request was aborted (the client went away) before the end. */
  aborted: boolean
}

/** Ollama's defaults for the options a request leaves out. */
const DEFAULTS = { temperature: 0.8, top_k: 40, top_p: 0.9, repeat_penalty: 1.1, repeat_last_n: 64 }

const ns = (ms: number) => Math.round(ms * 1e6)

/** A checked request: its tokens, how many it may generate, where it stops. */
export interface Prepared {
  tokens: Token[]
  limit: number
  stops: string[]
  sampling: Sampling
}

export class EngineBusyError extends Error {}

export class LoadedModel {
  readonly loadNs: number
  private free: LlamaContextSequence[] = []
  private waiting: { resolve: (s: LlamaContextSequence) => void; reject: (e: unknown) => void; signal?: AbortSignal }[] = []
  private embedding: Promise<LlamaEmbeddingContext> | undefined
  private active = 0
  /** The most requests that were generating at the same moment since the start. */
  peakActive = 0
  requests = 0
  private closed = false

  private constructor(
    readonly settings: ModelSettings,
    readonly info: GgufInfo,
    private lib: NodeLlamaCppModule,
    readonly llama: Llama,
    readonly model: LlamaModel,
    readonly context: LlamaContext,
    loadMs: number,
  ) {
    this.loadNs = ns(loadMs)
    for (let i = 0; i < settings.parallel; i++) this.free.push(context.getSequence())
  }

  static async load(lib: NodeLlamaCppModule, settings: ModelSettings): Promise<LoadedModel> {
    const started = performance.now()
    const info = readGguf(settings.path)
    const llama = await lib.getLlama({
      gpu: settings.gpuLayers === 0 ? false : 'auto',
      build: 'never',
      logLevel: lib.LlamaLogLevel.error,
      ...(settings.threads > 0 ? { maxThreads: settings.threads } : {}),
    })
    const model = await llama.loadModel({ modelPath: settings.path, gpuLayers: settings.gpuLayers })
    const context = await model.createContext({
      sequences: settings.parallel,
      contextSize: settings.contextSize,
      ...(settings.threads > 0 ? { threads: settings.threads } : {}),
    })
    return new LoadedModel(settings, info, lib, llama, model, context, performance.now() - started)
  }

  /** Tokens of context each request has. */
  get contextPerRequest(): number {
    return this.context.contextSize
  }

  get busy(): number {
    return this.active
  }

  get queued(): number {
    return this.waiting.length
  }

  /** Which compute backend generates: cuda, vulkan, metal, or cpu. */
  get backend(): string {
    return this.llama.gpu === false ? 'cpu' : this.llama.gpu
  }

  private acquire(signal: AbortSignal | undefined): Promise<LlamaContextSequence> {
    if (this.closed) return Promise.reject(new EngineBusyError('the model is shutting down'))
    const sequence = this.free.pop()
    if (sequence) return Promise.resolve(sequence)
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, ...(signal ? { signal } : {}) }
      this.waiting.push(waiter)
      signal?.addEventListener(
        'abort',
        () => {
          const at = this.waiting.indexOf(waiter)
          if (at >= 0) this.waiting.splice(at, 1)
          reject(signal.reason)
        },
        { once: true },
      )
    })
  }

  private release(sequence: LlamaContextSequence): void {
    const next = this.waiting.shift()
    if (next) next.resolve(sequence)
    else this.free.push(sequence)
  }

  /** The prompt as tokens: a chat through the model's chat template, raw text after the start token. */
  private tokensOf(prompt: Prompt): { tokens: Token[]; stops: string[] } {
    if (prompt.kind === 'raw') {
      const bos = this.model.tokens.bos
      return { tokens: [...(bos === null ? [] : [bos]), ...this.model.tokenize(prompt.text)], stops: [] }
    }
    const wrapper = this.lib.resolveChatWrapper(this.model)
    const history: ChatHistoryItem[] = prompt.messages.map((m) =>
      m.role === 'assistant' ? { type: 'model', response: [m.content] } : { type: m.role, text: m.content },
    )
    history.push({ type: 'model', response: [] })
    const state = wrapper.generateContextState({ chatHistory: history })
    const stops = state.stopGenerationTriggers
      .map((trigger) => this.model.detokenize(trigger.tokenize(this.model.tokenizer, 'trimLeadingSpace'), true))
      .filter((s) => s !== '')
    return { tokens: state.contextText.tokenize(this.model.tokenizer), stops }
  }

  /**
   * Check a request and make its tokens, before any answer starts: a prompt longer than a sequence's
   * context is a RangeError (the request's fault).
   */
  prepare(prompt: Prompt, sampling: Sampling): Prepared {
    const { tokens, stops: templateStops } = this.tokensOf(prompt)
    const room = this.contextPerRequest - tokens.length
    if (room <= 0)
      throw new RangeError(`the prompt takes ${tokens.length} tokens; this model's context holds ${this.contextPerRequest} per request`)
    const asked = sampling.num_predict ?? -1
    return {
      tokens,
      limit: asked < 0 ? room : Math.min(asked, room),
      stops: [...templateStops, ...(sampling.stop ?? []).filter((s) => s !== '')],
      sampling,
    }
  }

  /**
   * Generate for one prepared request. `onText` gets the text as it is produced (never a partial UTF-8
   * character nor the start of a stop string). Resolves with the counts when done or aborted.
   */
  async generate(request: Prepared, onText: (delta: string) => void, signal?: AbortSignal): Promise<Generation> {
    const started = performance.now()
    const { tokens, limit, stops, sampling } = request
    const hold = Math.max(0, ...stops.map((s) => s.length - 1))
    const sequence = await this.acquire(signal)
    this.active++
    this.requests++
    this.peakActive = Math.max(this.peakActive, this.active)
    const generated: Token[] = []
    let emitted = 0
    let text = ''
    let doneReason: Generation['doneReason'] = 'length'
    let firstTokenAt = 0
    try {
      await sequence.clearHistory()
      if (limit > 0) {
        const lastN = sampling.repeat_last_n ?? DEFAULTS.repeat_last_n
        const penalty = sampling.repeat_penalty ?? DEFAULTS.repeat_penalty
        const evaluation = sequence.evaluate(tokens, {
          temperature: sampling.temperature ?? DEFAULTS.temperature,
          topK: sampling.top_k ?? DEFAULTS.top_k,
          topP: sampling.top_p ?? DEFAULTS.top_p,
          ...(sampling.min_p !== undefined ? { minP: sampling.min_p } : {}),
          ...(sampling.seed !== undefined ? { seed: sampling.seed } : {}),
          ...(penalty !== 1 && lastN !== 0
            ? { repeatPenalty: { punishTokens: () => generated.slice(lastN < 0 ? 0 : -lastN), penalty } }
            : {}),
        })
        for await (const token of evaluation) {
          if (firstTokenAt === 0) firstTokenAt = performance.now()
          if (signal?.aborted) break
          if (this.model.isEogToken(token)) {
            doneReason = 'stop'
            break
          }
          generated.push(token)
          text = this.model.detokenize(generated)
          const stopAt = firstStop(text, stops, emitted)
          if (stopAt >= 0) {
            text = text.slice(0, stopAt)
            doneReason = 'stop'
            break
          }
          // Hold back a partial UTF-8 character (a byte token) and what could be the start of a stop string.
          let safe = text.length - hold
          if (text.endsWith('\uFFFD')) safe = Math.min(safe, text.length - 1)
          if (safe > emitted) {
            onText(text.slice(emitted, safe))
            emitted = safe
          }
          if (generated.length >= limit) break
        }
      }
      if (!signal?.aborted && text.length > emitted) onText(text.slice(emitted))
    } finally {
      this.active--
      this.release(sequence)
    }
    const ended = performance.now()
    const promptEnd = firstTokenAt || ended
    return {
      text,
      doneReason,
      promptTokens: tokens.length,
      evalTokens: generated.length,
      promptEvalNs: ns(promptEnd - started),
      evalNs: ns(ended - promptEnd),
      totalNs: ns(ended - started),
      aborted: signal?.aborted ?? false,
    }
  }

  /** One L2-normalized embedding per input (Ollama's /api/embed), with the tokens read. */
  async embed(inputs: string[]): Promise<{ embeddings: number[][]; promptTokens: number }> {
    this.embedding ??= this.model.createEmbeddingContext({
      ...(this.settings.threads > 0 ? { threads: this.settings.threads } : {}),
    })
    const context = await this.embedding
    const embeddings: number[][] = []
    let promptTokens = 0
    for (const input of inputs) {
      promptTokens += this.model.tokenize(input).length
      const vector = [...(await context.getEmbeddingFor(input)).vector]
      const norm = Math.hypot(...vector) || 1
      embeddings.push(vector.map((x) => x / norm))
    }
    return { embeddings, promptTokens }
  }

  async close(): Promise<void> {
    this.closed = true
    for (const waiter of this.waiting.splice(0)) waiter.reject(new EngineBusyError('the model is shutting down'))
    if (this.embedding) await (await this.embedding).dispose()
    await this.context.dispose()
    await this.model.dispose()
    await this.llama.dispose()
  }
}

/** Where the first stop string starts in `text` (searching from a little before `from`), or -1. */
function firstStop(text: string, stops: readonly string[], from: number): number {
  let best = -1
  for (const stop of stops) {
    const at = text.indexOf(stop, Math.max(0, from - stop.length))
    if (at >= 0 && (best < 0 || at < best)) best = at
  }
  return best
}
