-- KEYS: shops stream. ARGV: group, consumer, message ids held.
-- Renews (resets the idle time of) each message this consumer still owns; returns the
-- ids it no longer owns. Ownership is checked in the same script: a slow worker must
-- not take back a shop that another worker already took over. A stream that is gone
-- (the harvest forgotten, Redis emptied) holds nothing: every id is lost.
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
