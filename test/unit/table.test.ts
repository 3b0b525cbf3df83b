/** The CLI's one column layout (commands/_table.ts), which every table of orch's output goes through. */
import { describe, expect, test } from 'bun:test'
import { formatTable, tableLines } from '../../commands/_table.ts'
import { formatReport } from '../../commands/doctor.ts'

describe('formatTable', () => {
  test('each column as wide as its widest cell, two spaces between, the last column never padded', () => {
    expect(
      formatTable([
        ['ID', 'STATE', 'NOTE'],
        ['t_1', 'done', 'a long note'],
        ['t_22', 'queued', ''],
      ]),
    ).toBe(['ID    STATE   NOTE', 't_1   done    a long note', 't_22  queued  '].join('\n'))
  })

  test('trimEnd drops what empty cells at the end leave', () => {
    expect(
      tableLines(
        [
          ['a', 'b', ''],
          ['ccc', '', ''],
        ],
        { trimEnd: true },
      ),
    ).toEqual(['a    b', 'ccc'])
  })

  test('right-aligned columns with a least width, an indent, a gap per column, a header shorter than the rows', () => {
    const lines = tableLines(
      [
        ['n', 'p'],
        ['7', '90%', '← formula'],
        ['12', '5%', ''],
      ],
      { indent: '  ', gap: [1, 2], columns: [{ minWidth: 3, align: 'right' }, { align: 'right' }], trimEnd: true },
    )
    expect(lines).toEqual(['    n   p', '    7 90%  ← formula', '   12  5%'])
  })
})

test('orch doctor: the fix goes under its finding’s detail', () => {
  const text = formatReport({
    ok: false,
    findings: [
      { id: 'a', status: 'ok', title: 'state directory', detail: 'writable' },
      { id: 'b', status: 'error', title: 'port', detail: '9097 is taken', fix: 'orch stop' },
    ],
  } as Parameters<typeof formatReport>[0])
  expect(text.split('\n').slice(0, 4)).toEqual([
    'STATUS CHECK            DETAIL',
    'ok     state directory  writable',
    'ERROR  port             9097 is taken',
    '                        fix: orch stop',
  ])
})
