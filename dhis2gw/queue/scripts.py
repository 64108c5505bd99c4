"""The queue's Lua scripts. Each runs atomically in Redis, so no leader is needed.

Keys (``p`` is the configured prefix, ``d`` a destination name):

* ``p:ready:d``       LIST of submission ids waiting (LPUSH new ones, claim from the right: FIFO);
* ``p:processing:d``  LIST of ids being attempted;
* ``p:leases``        ZSET, member ``d|id``, score = lease expiry (ms);
* ``p:delayed``       ZSET, member ``d|id``, score = due time (ms);
* ``p:paused:d``      STRING, present while an operator paused the destination;
* ``p:members``       SET of ``d|id`` present in any of the structures above — it keeps an id
  from being queued twice (a push that timed out on our side may still land later);
* ``p:dests``         SET of destinations that have ever been used (the reaper walks it).

Times come from the caller (its injected clock), in milliseconds.
"""

# KEYS: ready, members, dests   ARGV: member (d|id), id, dest
ENQUEUE = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""

# KEYS: ready, processing, leases, paused   ARGV: dest, lease_until_ms
# Returns the claimed id, or false when paused / nothing waiting.
CLAIM = """
if redis.call('EXISTS', KEYS[4]) == 1 then
  return false
end
local id = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
if not id then
  return false
end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1] .. '|' .. id)
return id
"""

# KEYS: leases   ARGV: member, lease_until_ms   -> 1 if the lease still existed
HEARTBEAT = """
return redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[2], ARGV[1])
"""

# KEYS: processing, leases, members   ARGV: id, member
ACK = """
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SREM', KEYS[3], ARGV[2])
return 1
"""

# Put a claimed id back at the claiming end of ready (it is next), dropping its lease.
# KEYS: processing, leases, ready   ARGV: id, member
RELEASE = """
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('RPUSH', KEYS[3], ARGV[1])
return 1
"""

# Move a claimed id to the delayed set until due_ms.
# KEYS: processing, leases, delayed   ARGV: id, member, due_ms
DELAY = """
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return 1
"""

# Schedule an id that is not claimed (e.g. a row found 'retrying' by the reconciler).
# KEYS: delayed, members, dests   ARGV: member, due_ms, dest
SCHEDULE = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""

# A Lua prelude of the scripts below that walk a ZSET of ``d|id`` members (delayed, leases):
# ``take_due(each)`` removes up to ARGV[3] members of KEYS[1] scored at most ARGV[2] (now, ms),
# calls ``each(dest, id)`` for every one, and returns how many it took.
_TAKE_DUE = """
local function take_due(each)
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
  for _, member in ipairs(due) do
    local sep = string.find(member, '|', 1, true)
    redis.call('ZREM', KEYS[1], member)
    each(string.sub(member, 1, sep - 1), string.sub(member, sep + 1))
  end
  return #due
end
"""

# Move due delayed members to their ready lists.
# KEYS: delayed   ARGV: prefix, now_ms, limit   -> number moved
MOVE_DUE = _TAKE_DUE + """
return take_due(function(dest, id)
  redis.call('RPUSH', ARGV[1] .. ':ready:' .. dest, id)
end)
"""

# Return ids whose lease expired, and ids in processing lists with no lease at all, to ready.
# KEYS: leases, dests   ARGV: prefix, now_ms, limit
# Returns a flat list: dest1, id1, dest2, id2, ... of what was recovered.
REAP = _TAKE_DUE + """
local out = {}
local function recover(dest, id)
  if redis.call('LREM', ARGV[1] .. ':processing:' .. dest, 1, id) > 0 then
    redis.call('RPUSH', ARGV[1] .. ':ready:' .. dest, id)
    table.insert(out, dest)
    table.insert(out, id)
  end
end
take_due(recover)
for _, dest in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  for _, id in ipairs(redis.call('LRANGE', ARGV[1] .. ':processing:' .. dest, 0, -1)) do
    if not redis.call('ZSCORE', KEYS[1], dest .. '|' .. id) then
      recover(dest, id)
    end
  end
end
return out
"""

# Which of the given members are known to the queue?  KEYS: members  ARGV: member...
# Returns 1/0 per member.
KNOWN = """
local out = {}
for i, member in ipairs(ARGV) do
  out[i] = redis.call('SISMEMBER', KEYS[1], member)
end
return out
"""

# Batched ENQUEUE (requeue of many rows): the same rule per id — pushed only when it was in no
# queue structure. KEYS: ready, members, dests   ARGV: dest, id...   -> number pushed
ENQUEUE_MANY = """
local pushed = 0
for i = 2, #ARGV do
  if redis.call('SADD', KEYS[2], ARGV[1] .. '|' .. ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[1], ARGV[i])
    pushed = pushed + 1
  end
end
if pushed > 0 then
  redis.call('SADD', KEYS[3], ARGV[1])
end
return pushed
"""

# Claim up to N ids at once (aggregate batching). KEYS: ready, processing, leases, paused
# ARGV: dest, lease_until_ms, n   -> list of claimed ids (empty when paused)
CLAIM_MANY = """
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {}
end
local out = {}
for i = 1, tonumber(ARGV[3]) do
  local id = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
  if not id then break end
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1] .. '|' .. id)
  out[#out + 1] = id
end
return out
"""

# Extend the leases of several claimed ids. KEYS: leases  ARGV: dest, lease_until_ms, id...
HEARTBEAT_MANY = """
local n = 0
for i = 3, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[2], ARGV[1] .. '|' .. ARGV[i])
end
return n
"""
