/** Runs every benchmark in scripts/bench/ in turn. Each prints its own figures and ratios. */
const benches = ['cold-start.ts', 'cache.ts', 'engine.ts', 'batch.ts']
for (const bench of benches) {
  console.log(`\n# ${bench}`)
  const r = Bun.spawnSync([process.execPath, `${import.meta.dir}/${bench}`, ...process.argv.slice(2)], {
    stdout: 'inherit',
    stderr: 'inherit',
  })
  if (r.exitCode !== 0) process.exit(r.exitCode ?? 1)
}
