/**
 * The Lua scripts of the Redis task queue (./redis.ts). Each change of a task is one script, so Redis runs it
 * whole or not at all, and no other client sees it half done: the task's hash, the indexes it sits in, the
 * counts and the event on the cluster's stream move together. Every script gets the key prefix as KEYS[1]
 * and the caller's clock as an argument (the queue's `now`), never Redis's own.
 *
 * Keys, under the prefix P (`<redis_prefix>:`):
 *   P t:<id>               hash: the task, one field per Task field (absent = null), plus `score`: its claim
 *                          rank negated (priority × aging − created_at), fixed at submission
 *   P ready                zset: queued tasks due, by score (best first; ties by id, i.e. oldest first)
 *   P ready_at             zset: the same tasks by run_after (for nextRunAfter)
 *   P ready:m:<model>      zset: the same, of one model (a claim for some models reads only theirs)
 *   P delayed              zset: queued tasks not due yet, by run_after (a retry's backoff)
 *   P running              zset: running tasks by lease expiry
 *   P finished             zset: finished tasks by finished_at (prune, oldest first)
 *   P l:<state>            zset, all scores 0: ids by state; ids sort as their creation time, so a
 *                          reverse range by lex is newest first
 *   P l:<state>:<tenant>   the same per tenant
 *   P keys                 hash: tenant, a NUL byte, idempotency key -> id, until the task is pruned
 *   P counts               hash: state -> tasks
 *   P queued               hash: tenant -> queued tasks (absent when none)
 *   P events, P events:seq the cluster's event stream (src/bus/redis.ts), ids "<seq>-0" from one counter
 */

import { STREAM_MAX } from '../bus/redis.ts'

/** Most ready tasks a claim filtered by type reads (a filter by model alone reads each model's own set). */
export const CLAIM_SCAN_MAX = 5000

const PRELUDE = `
local P = KEYS[1]
local function tkey(id) return P .. 't:' .. id end
local function field(id, name) local v = redis.call('HGET', tkey(id), name); if v then return v end; return nil end
-- Fields to set, and those to clear (false): one HSET and at most one HDEL.
local function set(id, values)
  local k = tkey(id)
  local put, drop = {}, {}
  for name, value in pairs(values) do
    if value == false then drop[#drop + 1] = name else put[#put + 1] = name; put[#put + 1] = value end
  end
  if #put > 0 then redis.call('HSET', k, unpack(put)) end
  if #drop > 0 then redis.call('HDEL', k, unpack(drop)) end
end
local function listed(id, tenant, from, to)
  if from then
    redis.call('ZREM', P .. 'l:' .. from, id)
    redis.call('ZREM', P .. 'l:' .. from .. ':' .. tenant, id)
  end
  if to then
    redis.call('ZADD', P .. 'l:' .. to, 0, id)
    redis.call('ZADD', P .. 'l:' .. to .. ':' .. tenant, 0, id)
  end
end
local function queuedBy(tenant, delta)
  local n = redis.call('HINCRBY', P .. 'queued', tenant, delta)
  if n <= 0 then redis.call('HDEL', P .. 'queued', tenant) end
end
-- A task of tenant went from one state (false: it is new) to another (false: it is gone).
local function moved(id, tenant, from, to)
  if from == to then return end
  listed(id, tenant, from, to)
  if from then redis.call('HINCRBY', P .. 'counts', from, -1) end
  if to then redis.call('HINCRBY', P .. 'counts', to, 1) end
  if from == 'queued' then queuedBy(tenant, -1) end
  if to == 'queued' then queuedBy(tenant, 1) end
end
-- The due tasks of one model, in claim order: what a claim for some models reads.
local function byModel(model) return P .. 'ready:m:' .. model end
local function ready(id, score, model)
  redis.call('ZADD', P .. 'ready', score, id)
  if model then redis.call('ZADD', byModel(model), score, id) end
end
local function unqueue(id)
  redis.call('ZREM', P .. 'ready', id)
  redis.call('ZREM', P .. 'ready_at', id)
  redis.call('ZREM', P .. 'delayed', id)
  local model = field(id, 'model')
  if model then redis.call('ZREM', byModel(model), id) end
end
-- Queued again (a retry, a release, a recovery): due now, or after its run_after.
local function enqueue(id, runAfter, now)
  if runAfter <= now then
    ready(id, field(id, 'score'), field(id, 'model'))
    redis.call('ZADD', P .. 'ready_at', runAfter, id)
  else
    redis.call('ZADD', P .. 'delayed', runAfter, id)
  end
end
local function event(id, change, now)
  local f = redis.call('HMGET', tkey(id), 'state', 'type', 'model', 'tenant', 'attempts', 'idempotency_key')
  local seq = redis.call('INCR', P .. 'events:seq')
  local data = cjson.encode({ id = id, change = change, state = f[1], type = f[2], model = f[3] or cjson.null,
    tenant = f[4], attempts = tonumber(f[5]), idempotency_key = f[6] or cjson.null })
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', ${STREAM_MAX}, seq .. '-0', 'type', 'task', 'data', data, 'at', now)
end
local function task(id) return redis.call('HGETALL', tkey(id)) end
`

const script = (body: string) => `${PRELUDE}\n${body}`

/**
 * ARGV: now, max_queued (0: none), max_queued_per_tenant (0: none), bulk (1 when a bulk submission), then
 * 9 per task: id, type, model ('' = none), payload ('' = none, else JSON), priority, tenant, key ('' = none),
 * max_attempts, score. All or nothing: a task past a bound refuses the whole call with an error reply
 * "QUEUE_FULL <which> <limit> <queued> <tenant>". Returns per task {1, id} (made) or {0, fields} (its key
 * was known: that task).
 */
export const SUBMIT = script(`
local now = tonumber(ARGV[1])
local maxQueued = tonumber(ARGV[2])
local maxTenant = tonumber(ARGV[3])
local n = (#ARGV - 4) / 9
local total = tonumber(redis.call('HGET', P .. 'counts', 'queued') or '0')
local byTenant = {}
local seen = {}
local plan = {}
for i = 0, n - 1 do
  local b = 4 + i * 9
  local id, tenant, key = ARGV[b + 1], ARGV[b + 6], ARGV[b + 7]
  local existing = nil
  if key ~= '' then
    local slot = tenant .. '\\0' .. key
    existing = seen[slot] or redis.call('HGET', P .. 'keys', slot)
    if not existing then seen[slot] = id end
  end
  if existing then
    plan[#plan + 1] = { false, existing }
  else
    local own = byTenant[tenant] or tonumber(redis.call('HGET', P .. 'queued', tenant) or '0')
    if maxQueued > 0 and total >= maxQueued then
      return redis.error_reply('QUEUE_FULL tasks.max_queued ' .. maxQueued .. ' ' .. total .. ' -')
    end
    if maxTenant > 0 and own >= maxTenant then
      return redis.error_reply('QUEUE_FULL tasks.max_queued_per_tenant ' .. maxTenant .. ' ' .. own .. ' ' .. tenant)
    end
    total = total + 1
    byTenant[tenant] = own + 1
    plan[#plan + 1] = { true, b }
  end
end
local out = {}
for i, step in ipairs(plan) do
  if step[1] then
    local b = step[2]
    local id, tenant, key = ARGV[b + 1], ARGV[b + 6], ARGV[b + 7]
    local k = tkey(id)
    redis.call('HSET', k, 'id', id, 'type', ARGV[b + 2], 'priority', ARGV[b + 5], 'tenant', tenant, 'state', 'queued',
      'attempts', 0, 'max_attempts', ARGV[b + 8], 'stalled_count', 0, 'run_after', now, 'score', ARGV[b + 9],
      'created_at', now, 'updated_at', now)
    if ARGV[b + 3] ~= '' then redis.call('HSET', k, 'model', ARGV[b + 3]) end
    if ARGV[b + 4] ~= '' then redis.call('HSET', k, 'payload', ARGV[b + 4]) end
    if key ~= '' then
      redis.call('HSET', k, 'idempotency_key', key)
      redis.call('HSET', P .. 'keys', tenant .. '\\0' .. key, id)
    end
    moved(id, tenant, false, 'queued')
    ready(id, ARGV[b + 9], ARGV[b + 3] ~= '' and ARGV[b + 3] or nil)
    redis.call('ZADD', P .. 'ready_at', now, id)
    event(id, 'submitted', now)
    out[i] = { 1, id }
  else
    out[i] = { 0, task(step[2]) }
  end
end
return out
`)

/**
 * ARGV: now, owner, lease_ms, limit, types (JSON array or ''), models (JSON array or ''). Due retries join
 * the ready set first. Returns the claimed tasks, best first.
 */
export const CLAIM = script(`
local now = tonumber(ARGV[1])
local owner, leaseMs, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', P .. 'delayed', id)
  enqueue(id, tonumber(field(id, 'run_after')), now)
end
local function allowed(list)
  if ARGV[list] == '' then return nil end
  local set = {}
  for _, v in ipairs(cjson.decode(ARGV[list])) do set[v] = true end
  return set
end
local types, models = allowed(5), allowed(6)
local picked = {}
if models and not types then
  -- The best 'limit' of each model's own set, merged in claim order (score, then id): exact, and as cheap
  -- as the models named, however many tasks of other models are queued.
  local candidates = {}
  for model in pairs(models) do
    local found = redis.call('ZRANGE', byModel(model), 0, limit - 1, 'WITHSCORES')
    for i = 1, #found, 2 do candidates[#candidates + 1] = { tonumber(found[i + 1]), found[i] } end
  end
  table.sort(candidates, function(x, y) if x[1] ~= y[1] then return x[1] < y[1] end return x[2] < y[2] end)
  for i = 1, math.min(limit, #candidates) do picked[i] = candidates[i][2] end
else
  -- A filter by type reads the ready tasks in claim order, at most CLAIM_SCAN_MAX of them per claim.
  local offset = 0
  local chunk = math.max(limit, 64)
  while #picked < limit and offset < ${CLAIM_SCAN_MAX} do
    local ids = redis.call('ZRANGE', P .. 'ready', offset, offset + chunk - 1)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      if #picked >= limit then break end
      local f = redis.call('HMGET', tkey(id), 'type', 'model')
      if (not types or types[f[1]]) and (not models or (f[2] and models[f[2]])) then picked[#picked + 1] = id end
    end
    if not types and not models then break end
    offset = offset + chunk
  end
end
local out = {}
for i, id in ipairs(picked) do
  unqueue(id)
  local expires = now + leaseMs
  redis.call('HINCRBY', tkey(id), 'attempts', 1)
  set(id, { state = 'running', lease_owner = owner, lease_expires_at = expires, started_at = now, updated_at = now })
  redis.call('ZADD', P .. 'running', expires, id)
  moved(id, field(id, 'tenant'), 'queued', 'running')
  event(id, 'claimed', now)
  out[i] = task(id)
end
return out
`)

/** Whether `id` is running under ARGV owner; the guard of every write about a running task. */
const OWNED = `
local function owned(id, owner)
  local f = redis.call('HMGET', tkey(id), 'state', 'lease_owner')
  return f[1] == 'running' and f[2] == owner
end
`

/** KEYS[2]: the id. ARGV: now, owner, lease_ms. Returns 1 when renewed, 0 when the lease is lost. */
export const RENEW = script(`${OWNED}
local id, now = KEYS[2], tonumber(ARGV[1])
if not owned(id, ARGV[2]) then return 0 end
local expires = now + tonumber(ARGV[3])
set(id, { lease_expires_at = expires, updated_at = now })
redis.call('ZADD', P .. 'running', expires, id)
return 1
`)

/**
 * KEYS[2]: the id. ARGV: now, owner, result JSON ('' = none), 'full' to get the task back. Returns 1 (or the
 * task, with 'full') once done, nothing when the lease is lost. The caller that claimed the task knows the
 * rest of it, so the common answer is short: no payload to send back and parse.
 */
export const COMPLETE = script(`${OWNED}
local id, now = KEYS[2], tonumber(ARGV[1])
if not owned(id, ARGV[2]) then return false end
set(id, { state = 'done', result = ARGV[3] ~= '' and ARGV[3] or false, lease_expires_at = false, updated_at = now, finished_at = now })
redis.call('ZREM', P .. 'running', id)
redis.call('ZADD', P .. 'finished', now, id)
moved(id, field(id, 'tenant'), 'running', 'done')
event(id, 'done', now)
if ARGV[4] == 'full' then return task(id) end
return 1
`)

/** KEYS[2]: the id. ARGV: owner. Returns {attempts, max_attempts} while `owner` holds the task, else nothing. */
export const ATTEMPTS = script(`${OWNED}
local id = KEYS[2]
if not owned(id, ARGV[1]) then return false end
return redis.call('HMGET', tkey(id), 'attempts', 'max_attempts')
`)

/**
 * KEYS[2]: the id. ARGV: now, owner, attempts the decision was made on, 'retry' or a fail reason, delay ms,
 * error JSON. Returns the task after the change, or nothing when the lease is lost (or the attempt moved on).
 */
export const FAIL = script(`${OWNED}
local id, now = KEYS[2], tonumber(ARGV[1])
if not owned(id, ARGV[2]) or field(id, 'attempts') ~= ARGV[3] then return false end
redis.call('ZREM', P .. 'running', id)
local tenant = field(id, 'tenant')
if ARGV[4] == 'retry' then
  local runAfter = now + tonumber(ARGV[5])
  set(id, { state = 'queued', run_after = runAfter, error = ARGV[6], lease_owner = false, lease_expires_at = false, updated_at = now })
  enqueue(id, runAfter, now)
  moved(id, tenant, 'running', 'queued')
  event(id, 'retrying', now)
else
  set(id, { state = 'failed', fail_reason = ARGV[4], error = ARGV[6], lease_expires_at = false, updated_at = now, finished_at = now })
  redis.call('ZADD', P .. 'finished', now, id)
  moved(id, tenant, 'running', 'failed')
  event(id, 'failed', now)
end
return task(id)
`)

/** KEYS[2]: the id. ARGV: now, owner. The attempt is refunded, no stall counted. Returns the task or nothing. */
export const RELEASE = script(`${OWNED}
local id, now = KEYS[2], tonumber(ARGV[1])
if not owned(id, ARGV[2]) then return false end
local attempts = math.max(tonumber(field(id, 'attempts')) - 1, 0)
redis.call('ZREM', P .. 'running', id)
set(id, { state = 'queued', attempts = attempts, run_after = now, lease_owner = false, lease_expires_at = false, updated_at = now })
enqueue(id, now, now)
moved(id, field(id, 'tenant'), 'running', 'queued')
event(id, 'requeued', now)
return task(id)
`)

/** KEYS[2]: the id. ARGV: now. Returns {1, task} when cancelled now, {0, task} when it was finished, {} if unknown. */
export const CANCEL = script(`
local id, now = KEYS[2], tonumber(ARGV[1])
local state = field(id, 'state')
if not state then return {} end
if state ~= 'queued' and state ~= 'running' then return { 0, task(id) } end
unqueue(id)
redis.call('ZREM', P .. 'running', id)
set(id, { state = 'cancelled', fail_reason = 'cancelled', lease_expires_at = false, updated_at = now, finished_at = now })
redis.call('ZADD', P .. 'finished', now, id)
moved(id, field(id, 'tenant'), state, 'cancelled')
event(id, 'cancelled', now)
return { 1, task(id) }
`)

/**
 * ARGV: now, max_stalled, stalled error JSON, then either 'expired' (running tasks whose lease expired
 * before now) or 'owners' followed by the owners that are gone. A lost lease counts as a stall; past
 * max_stalled, or with no attempt left, the task fails; else it is queued again at once, its attempt kept.
 * Returns the tasks after the change.
 */
export const RECOVER = script(`
local now, maxStalled, errorJson = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local ids = {}
if ARGV[4] == 'expired' then
  ids = redis.call('ZRANGEBYSCORE', P .. 'running', '-inf', '(' .. ARGV[1], 'LIMIT', 0, 1000)
else
  local gone = {}
  for i = 5, #ARGV do gone[ARGV[i]] = true end
  for _, id in ipairs(redis.call('ZRANGE', P .. 'running', 0, -1)) do
    if gone[field(id, 'lease_owner') or ''] then ids[#ids + 1] = id end
  end
end
local out = {}
for _, id in ipairs(ids) do
  if field(id, 'state') == 'running' then
    redis.call('ZREM', P .. 'running', id)
    local stalled = tonumber(field(id, 'stalled_count')) + 1
    local attempts, maxAttempts = tonumber(field(id, 'attempts')), tonumber(field(id, 'max_attempts'))
    local tenant = field(id, 'tenant')
    local values = { stalled_count = stalled, error = errorJson, lease_owner = false, lease_expires_at = false,
      run_after = now, updated_at = now }
    if stalled > maxStalled or attempts >= maxAttempts then
      values.state = 'failed'
      values.fail_reason = stalled > maxStalled and 'stalled' or 'max_attempts'
      values.finished_at = now
      set(id, values)
      redis.call('ZADD', P .. 'finished', now, id)
      moved(id, tenant, 'running', 'failed')
      event(id, 'failed', now)
    else
      values.state = 'queued'
      values.fail_reason = false
      values.finished_at = false
      set(id, values)
      enqueue(id, now, now)
      moved(id, tenant, 'running', 'queued')
      event(id, 'requeued', now)
    end
    out[#out + 1] = task(id)
  else
    redis.call('ZREM', P .. 'running', id)
  end
end
return out
`)

/** ARGV: finished before (ms), limit. Deletes the longest-finished tasks first; returns how many. */
export const PRUNE = script(`
local ids = redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', tkey(id), 'state', 'tenant', 'idempotency_key')
  if f[1] then
    moved(id, f[2], f[1], false)
    if f[3] then
      local slot = f[2] .. '\\0' .. f[3]
      if redis.call('HGET', P .. 'keys', slot) == id then redis.call('HDEL', P .. 'keys', slot) end
    end
    redis.call('DEL', tkey(id))
  end
  redis.call('ZREM', P .. 'finished', id)
end
return #ids
`)
