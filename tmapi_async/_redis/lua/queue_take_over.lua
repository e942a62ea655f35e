-- KEYS: shops stream, the fleet's pulse. ARGV: group, consumer, min idle (ms), count,
-- cursor, pulse gap (ms; 0: no pulse check).
-- Takes over messages idle for at least min idle (their holder stopped renewing them),
-- scanning the pending list from the cursor (Redis scans at most 10 x count entries a
-- call: the caller keeps the cursor, so entries behind live ones are reached too).
-- Returns {next cursor ('0-0' once the scan wrapped), {{id, shop URL, deliveries}...}}.
-- Entries of deleted messages are skipped; the delivery count is read from the pending
-- list (the claim has counted itself).
local P, GAP, HOLD = KEYS[2], tonumber(ARGV[6]), tonumber(ARGV[3])
--#include pulse
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
