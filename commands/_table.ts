/** The one column layout of the CLI's tables: `orch tasks list`, `orch pool status`, `orch status`, `orch doctor`, … */

export interface Column {
  /** Least width; a wider cell widens the column. */
  minWidth?: number
  /** 'right' pads on the left (figures); default 'left'. */
  align?: 'left' | 'right'
}

export interface TableOptions {
  /** Spaces after each column, one number for all or one per column; default 2. */
  gap?: number | number[]
  /** Before every line. */
  indent?: string
  columns?: Array<Column | undefined>
  /** Drop trailing spaces (left by empty cells at the end of a row). */
  trimEnd?: boolean
}

/**
 * Rows of cells (the header, if any, is the first row) as aligned lines: each column as wide as its widest
 * cell, the last column never padded, so a long last column (a detail, a description) runs on. A row may
 * have fewer cells than the others (a header without the last column's title).
 */
export function tableLines(rows: string[][], options: TableOptions = {}): string[] {
  const count = Math.max(0, ...rows.map((row) => row.length))
  const widths = Array.from({ length: count }, (_, i) =>
    Math.max(options.columns?.[i]?.minWidth ?? 0, ...rows.map((row) => (row[i] ?? '').length)),
  )
  const gapAfter = (i: number) => ' '.repeat(Array.isArray(options.gap) ? (options.gap[i] ?? 2) : (options.gap ?? 2))
  return rows.map((row) => {
    const cells = row.map((cell, i) => {
      if (i === count - 1) return cell
      const padded = options.columns?.[i]?.align === 'right' ? cell.padStart(widths[i] as number) : cell.padEnd(widths[i] as number)
      return padded + gapAfter(i)
    })
    const line = `${options.indent ?? ''}${cells.join('')}`
    return options.trimEnd ? line.trimEnd() : line
  })
}

export function formatTable(rows: string[][], options: TableOptions = {}): string {
  return tableLines(rows, options).join('\n')
}
