/**
 * What a GGUF model file says about itself, read from its header without loading it: the format version,
 * the architecture, the layer and embedding sizes, the tensor count, and whether the tensors the header
 * describes fit in the file. `orch doctor` reports it for each llamacpp pool; `orch model-worker` checks a
 * file with it before node-llama-cpp loads it, so a wrong file gets a sentence instead of a native crash.
 *
 * The layout (little-endian): the magic `GGUF`, a uint32 version (2 or 3), uint64 tensor and metadata
 * counts, the metadata as key (uint64 length + UTF-8), uint32 type, value; then per tensor its name, uint32
 * dimension count, uint64 dimensions, uint32 type and uint64 offset into the data, which starts at the next
 * multiple of `general.alignment` (32).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'

/** The most header bytes read: a large vocabulary takes a few MiB. */
export const MAX_HEADER_BYTES = 64 * 1024 * 1024

export interface GgufInfo {
  version: number
  architecture: string
  name?: string | undefined
  tensorCount: number
  /** Weights: the elements of every tensor. */
  parameters: number
  /** Size of the file in bytes. */
  fileBytes: number
  /** Bytes of the tensor data (the file less its header). */
  dataBytes: number
  blockCount?: number | undefined
  embeddingLength?: number | undefined
  contextLength?: number | undefined
  headCount?: number | undefined
  headCountKv?: number | undefined
  /** general.file_type: 0 all F32, 1 mostly F16, 15 mostly Q4_K_M, … */
  fileType?: number | undefined
  vocabSize?: number | undefined
}

export class GgufError extends Error {}

const TYPE_SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 }
const STRING = 8
const ARRAY = 9

/** Bytes per block and elements per block of each ggml tensor type (to check the data fits the file). */
const BLOCKS: Record<number, [bytes: number, elements: number]> = {
  0: [4, 1], // F32
  1: [2, 1], // F16
  2: [18, 32], // Q4_0
  3: [20, 32], // Q4_1
  6: [22, 32], // Q5_0
  7: [24, 32], // Q5_1
  8: [34, 32], // Q8_0
  9: [36, 32], // Q8_1
  10: [84, 256], // Q2_K
  11: [110, 256], // Q3_K
  12: [144, 256], // Q4_K
  13: [176, 256], // Q5_K
  14: [210, 256], // Q6_K
  15: [292, 256], // Q8_K
  24: [1, 1], // I8
  25: [2, 1], // I16
  26: [4, 1], // I32
  27: [8, 1], // I64
  28: [8, 1], // F64
  30: [2, 1], // BF16
}

class Reader {
  at = 0
  private view: DataView
  constructor(
    private bytes: Uint8Array,
    private fileBytes: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
  private need(n: number): void {
    if (this.at + n <= this.bytes.length) return
    throw new GgufError(
      this.bytes.length < this.fileBytes
        ? `its header is larger than ${MAX_HEADER_BYTES / 1024 / 1024} MiB`
        : `the file ends inside its header (at byte ${this.at} of ${this.fileBytes}): truncated?`,
    )
  }
  u32(): number {
    this.need(4)
    const n = this.view.getUint32(this.at, true)
    this.at += 4
    return n
  }
  u64(): number {
    this.need(8)
    const n = this.view.getBigUint64(this.at, true)
    this.at += 8
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(`a count in its header is out of range (${n})`)
    return Number(n)
  }
  skip(n: number): void {
    this.need(n)
    this.at += n
  }
  str(): string {
    const len = this.u64()
    this.need(len)
    const s = new TextDecoder().decode(this.bytes.subarray(this.at, this.at + len))
    this.at += len
    return s
  }
  /** A scalar's value (numbers and strings), or undefined for arrays, which are skipped (their length is kept). */
  value(type: number): { value?: unknown; length?: number } {
    if (type === STRING) return { value: this.str() }
    if (type === ARRAY) {
      const itemType = this.u32()
      const length = this.u64()
      if (itemType === STRING) for (let i = 0; i < length; i++) this.str()
      else {
        const size = TYPE_SIZES[itemType]
        if (size === undefined) throw new GgufError(`an array in its header has unknown item type ${itemType}`)
        this.skip(size * length)
      }
      return { length }
    }
    const size = TYPE_SIZES[type]
    if (size === undefined) throw new GgufError(`a metadata value has unknown type ${type}`)
    this.need(size)
    const view = this.view
    const at = this.at
    this.at += size
    switch (type) {
      case 0:
        return { value: view.getUint8(at) }
      case 1:
        return { value: view.getInt8(at) }
      case 2:
        return { value: view.getUint16(at, true) }
      case 3:
        return { value: view.getInt16(at, true) }
      case 4:
        return { value: view.getUint32(at, true) }
      case 5:
        return { value: view.getInt32(at, true) }
      case 6:
        return { value: view.getFloat32(at, true) }
      case 7:
        return { value: view.getUint8(at) !== 0 }
      case 12:
        return { value: view.getFloat64(at, true) }
      default:
        return { value: Number(type === 10 ? view.getBigUint64(at, true) : view.getBigInt64(at, true)) }
    }
  }
}

function readHead(path: string): { bytes: Uint8Array; fileBytes: number } {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new GgufError(code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not readable (permission denied)' : String(err))
  }
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) throw new GgufError('not a regular file')
    const bytes = new Uint8Array(Math.min(stat.size, MAX_HEADER_BYTES))
    let got = 0
    while (got < bytes.length) {
      const n = readSync(fd, bytes, got, bytes.length - got, got)
      if (n === 0) break
      got += n
    }
    return { bytes: bytes.subarray(0, got), fileBytes: stat.size }
  } finally {
    closeSync(fd)
  }
}

const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined)

/** Read and check a GGUF file's header. Throws GgufError with what is wrong (the caller names the file). */
export function readGguf(path: string): GgufInfo {
  const { bytes, fileBytes } = readHead(path)
  if (fileBytes < 24 || new TextDecoder().decode(bytes.subarray(0, 4)) !== 'GGUF')
    throw new GgufError('not a GGUF file (it does not start with "GGUF")')
  const r = new Reader(bytes, fileBytes)
  r.skip(4)
  const version = r.u32()
  if (version !== 2 && version !== 3) throw new GgufError(`GGUF version ${version}; node-llama-cpp reads versions 2 and 3`)
  const tensorCount = r.u64()
  const metaCount = r.u64()
  const meta = new Map<string, unknown>()
  const lengths = new Map<string, number>()
  for (let i = 0; i < metaCount; i++) {
    const key = r.str()
    const { value, length } = r.value(r.u32())
    if (value !== undefined) meta.set(key, value)
    if (length !== undefined) lengths.set(key, length)
  }
  const architecture = meta.get('general.architecture')
  if (typeof architecture !== 'string' || architecture === '') throw new GgufError('its header names no general.architecture')
  let dataEnd = 0
  let parameters = 0
  for (let i = 0; i < tensorCount; i++) {
    const name = r.str()
    const dims = r.u32()
    if (dims > 8) throw new GgufError(`tensor "${name}" has ${dims} dimensions`)
    let elements = 1
    for (let d = 0; d < dims; d++) elements *= r.u64()
    parameters += elements
    const type = r.u32()
    const offset = r.u64()
    const block = BLOCKS[type]
    if (block) dataEnd = Math.max(dataEnd, offset + Math.ceil(elements / block[1]) * block[0])
  }
  const alignment = num(meta.get('general.alignment')) ?? 32
  const dataStart = Math.ceil(r.at / alignment) * alignment
  if (dataStart + dataEnd > fileBytes)
    throw new GgufError(`its tensors need ${dataStart + dataEnd} bytes but the file has ${fileBytes}: truncated?`)
  const arch = (key: string) => num(meta.get(`${architecture}.${key}`))
  return {
    version,
    architecture,
    name: typeof meta.get('general.name') === 'string' ? (meta.get('general.name') as string) : undefined,
    tensorCount,
    parameters,
    fileBytes,
    dataBytes: fileBytes - dataStart,
    blockCount: arch('block_count'),
    embeddingLength: arch('embedding_length'),
    contextLength: arch('context_length'),
    headCount: arch('attention.head_count'),
    headCountKv: arch('attention.head_count_kv') ?? arch('attention.head_count'),
    fileType: num(meta.get('general.file_type')),
    vocabSize: lengths.get('tokenizer.ggml.tokens'),
  }
}

const QUANTIZATION: Record<number, string> = {
  0: 'F32',
  1: 'F16',
  2: 'Q4_0',
  3: 'Q4_1',
  7: 'Q8_0',
  8: 'Q5_0',
  9: 'Q5_1',
  10: 'Q2_K',
  11: 'Q3_K_S',
  12: 'Q3_K_M',
  13: 'Q3_K_L',
  14: 'Q4_K_S',
  15: 'Q4_K_M',
  16: 'Q5_K_S',
  17: 'Q5_K_M',
  18: 'Q6_K',
  32: 'BF16',
}

/** The file type as Ollama's `quantization_level` names it (`Q4_K_M`), or `unknown`. */
export function quantization(info: GgufInfo): string {
  return info.fileType === undefined ? 'unknown' : (QUANTIZATION[info.fileType] ?? `type ${info.fileType}`)
}

/** A parameter count as Ollama shows it: `1.2B`, `7.6M`, `118K`. */
export function parameterSize(count: number): string {
  for (const [unit, size] of [
    ['B', 1e9],
    ['M', 1e6],
    ['K', 1e3],
  ] as const)
    if (count >= size) return `${(count / size).toFixed(count >= size * 10 ? 0 : 1)}${unit}`
  return String(count)
}

/**
 * Bytes a model needs in memory with `context` tokens of cache: its weights plus the key and value cache
 * (2 × layers × context × the key/value width, at 2 bytes an element). An estimate, for `orch doctor`.
 */
export function memoryEstimate(info: GgufInfo, context: number): number {
  const layers = info.blockCount ?? 0
  const embedding = info.embeddingLength ?? 0
  const kvWidth = info.headCount && info.headCountKv ? (embedding * info.headCountKv) / info.headCount : embedding
  return info.dataBytes + 2 * layers * context * kvWidth * 2
}
