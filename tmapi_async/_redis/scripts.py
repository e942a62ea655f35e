"""The Lua scripts of a distributed harvest: each step that must not half-happen.

Redis runs a script atomically, so a process killed between two commands of one step
cannot leave the step half done: a shop is never submitted twice, a page never
committed twice, and a shop's final status exists exactly when its final result does.
Scripts touch only the keys they are given (standalone Redis; see ``queue.py`` for
the key layout).
"""

from __future__ import annotations

from typing import Final

#: KEYS: members set, shop hash, shops stream, counts hash, dead set, harvest record.
#: ARGV: shop URL.
#: Returns 1 (submitted), 2 (finished failed or partial before: submitted again), 0 (known),
#: -2 (the harvest has no record: Redis lost it, or it was forgotten).
SUBMIT: Final = """
if redis.call('EXISTS', KEYS[6]) == 0 then return -2 end
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[3], '*', 'shop', ARGV[1])
  redis.call('HINCRBY', KEYS[4], 'submitted', 1)
  return 1
end
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'failed' or status == 'partial' then
  redis.call('HDEL', KEYS[2], 'status', 'error')
  redis.call('HINCRBY', KEYS[4], status, -1)
  redis.call('HINCRBY', KEYS[4], 'done', -1)
  redis.call('SREM', KEYS[5], ARGV[1])
  redis.call('XADD', KEYS[3], '*', 'shop', ARGV[1])
  return 2
end
return 0
"""

#: KEYS: shop hash, results stream, counts hash, shops stream, harvest record.
#: ARGV: shop URL, page, read (1 = first answer of the page, 2 = its first refetch
#: after drift, ...), total_count, page_size, items (msgspec JSON), number of items,
#: the shop's message id, group, consumer.
#: Returns 1 when committed; 0 when this read of the page was committed before (by
#: anyone) or the shop is already finished; -1 when the consumer no longer holds the
#: shop's message (taken over: a late commit is refused); -2 when the harvest has no
#: record (Redis lost its data, or the harvest was forgotten: nothing is recreated).
COMMIT_PAGE: Final = """
if redis.call('EXISTS', KEYS[5]) == 0 or redis.call('EXISTS', KEYS[4]) == 0 then
  return -2
end
local held = redis.call('XPENDING', KEYS[4], ARGV[9], ARGV[8], ARGV[8], 1)[1]
if not held or held[2] ~= ARGV[10] then return -1 end
if redis.call('HEXISTS', KEYS[1], 'status') == 1 then return 0 end
local page = ARGV[2]
local read = tonumber(ARGV[3])
if tonumber(redis.call('HGET', KEYS[1], 'r' .. page) or '0') >= read then return 0 end
redis.call('HSET', KEYS[1], 'r' .. page, read)
local total = tonumber(ARGV[4])
if total > tonumber(redis.call('HGET', KEYS[1], 't' .. page) or '-1') then
  redis.call('HSET', KEYS[1], 't' .. page, total)
end
if page == '1' or redis.call('HEXISTS', KEYS[1], 'size') == 0 then
  redis.call('HSET', KEYS[1], 'size', ARGV[5])
end
redis.call('XADD', KEYS[2], '*', 'kind', 'page', 'shop', ARGV[1], 'page', page,
  'read', ARGV[3], 'total', ARGV[4], 'size', ARGV[5], 'items', ARGV[6])
redis.call('HINCRBY', KEYS[3], 'pages', 1)
redis.call('HINCRBY', KEYS[3], 'items', tonumber(ARGV[7]))
return 1
"""

#: KEYS: shop hash, results stream, counts hash, shops stream, dead set, harvest record.
#: ARGV: shop URL, message id, group, status, error, total_count, pages, requests,
#: item count, dead ('1': given up after too many deliveries), consumer.
#: Returns 1 if this call finished the shop (and acknowledged its message); 0 if
#: someone had finished it before (the message is acknowledged anyway); -1 if the
#: consumer no longer holds the message (taken over: its verdict is refused, nothing
#: changes); -2 if the harvest has no record.
FINISH_SHOP: Final = """
if redis.call('EXISTS', KEYS[6]) == 0 or redis.call('EXISTS', KEYS[4]) == 0 then
  return -2
end
local held = redis.call('XPENDING', KEYS[4], ARGV[3], ARGV[2], ARGV[2], 1)[1]
if not held or held[2] ~= ARGV[11] then return -1 end
redis.call('XACK', KEYS[4], ARGV[3], ARGV[2])
redis.call('XDEL', KEYS[4], ARGV[2])
if redis.call('HEXISTS', KEYS[1], 'status') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'error', ARGV[5])
redis.call('XADD', KEYS[2], '*', 'kind', 'shop', 'shop', ARGV[1], 'status', ARGV[4],
  'error', ARGV[5], 'total', ARGV[6], 'pages', ARGV[7], 'requests', ARGV[8],
  'items', ARGV[9])
redis.call('HINCRBY', KEYS[3], 'done', 1)
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
if ARGV[10] == '1' then redis.call('SADD', KEYS[5], ARGV[1]) end
return 1
"""

#: KEYS: shops stream. ARGV: group, consumer, message ids held.
#: Renews (resets the idle time of) each message this consumer still owns; returns the
#: ids it no longer owns. Ownership is checked in the same script: a slow worker must
#: not take back a shop that another worker already took over. A stream that is gone
#: (the harvest forgotten, Redis emptied) holds nothing: every id is lost.
HEARTBEAT: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {unpack(ARGV, 3)} end
local lost = {}
for i = 3, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)[1]
  if entry and entry[2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""

#: The fleet's pulse, shared by the scripts that workers run every heartbeat: a hash
#: {last: when a worker last ran one (ms, Redis clock), hold: no take-over before}.
#: A gap longer than ARGV gap (Redis frozen or restarted, every worker cut off) makes
#: every shop look idle, the live workers' too: take-overs wait ``hold`` ms, time for
#: each worker to renew what it holds. Expects ``P`` (the pulse key), ``GAP`` (0: no
#: pulse) and ``HOLD``; sets ``t`` (Redis's TIME) and ``now`` (in ms).
_PULSE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if GAP > 0 then
  local last = tonumber(redis.call('HGET', P, 'last') or '0')
  if now - last > GAP then redis.call('HSET', P, 'hold', now + HOLD) end
  redis.call('HSET', P, 'last', now)
end
"""

#: KEYS: shops stream, the fleet's pulse. ARGV: group, consumer, min idle (ms), count,
#: cursor, pulse gap (ms; 0: no pulse check).
#: Takes over messages idle for at least min idle (their holder stopped renewing them),
#: scanning the pending list from the cursor (Redis scans at most 10 x count entries a
#: call: the caller keeps the cursor, so entries behind live ones are reached too).
#: Returns {next cursor ('0-0' once the scan wrapped), {{id, shop URL, deliveries}...}}.
#: Entries of deleted messages are skipped; the delivery count is read from the pending
#: list (the claim has counted itself).
TAKE_OVER: Final = (
    """
local P, GAP, HOLD = KEYS[2], tonumber(ARGV[6]), tonumber(ARGV[3])
"""
    + _PULSE
    + """
if GAP > 0 and now < tonumber(redis.call('HGET', P, 'hold') or '0') then
  return {ARGV[5], {}}
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'0-0', {}} end
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[5],
  'COUNT', ARGV[4])
local out = {}
for _, message in ipairs(claimed[2]) do
  if message and message ~= false and message[2] then
    local fields, shop = message[2], nil
    for j = 1, #fields, 2 do
      if fields[j] == 'shop' then shop = fields[j + 1] end
    end
    local entry = redis.call('XPENDING', KEYS[1], ARGV[1], message[1], message[1], 1)[1]
    if shop and entry then out[#out + 1] = {message[1], shop, entry[4]} end
  end
end
return {claimed[1], out}
"""
)

#: KEYS: shops stream. ARGV: group, consumer, message ids.
#: Hands messages this consumer owns back at once: their idle time is set far past the
#: take-over threshold, and their delivery count back by one (a polite hand-back is not
#: a failed delivery). Returns how many were handed back. One handed back already (a
#: call sent again after its answer was lost) is left as it is: counted back once.
HAND_BACK: Final = """
local n = 0
for i = 3, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)[1]
  if entry and entry[2] == ARGV[2] and tonumber(entry[3]) < 86400000 then
    local count = math.max(tonumber(entry[4]) - 1, 0)
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', 86400000,
      'RETRYCOUNT', count, 'JUSTID')
    n = n + 1
  end
end
return n
"""

#: KEYS: workers hash, the fleet's pulse. ARGV: worker id, its description (JSON without
#: the time), pulse gap (ms), take-over hold (ms).
#: Records the worker's heartbeat on the Redis clock, so machines' clocks do not matter.
WORKER_BEAT: Final = (
    """
local P, GAP, HOLD = KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4])
"""
    + _PULSE
    + """
redis.call('HSET', KEYS[1], ARGV[1], t[1] .. ' ' .. ARGV[2])
return t[1]
"""
)
