-- KEYS: shops stream. ARGV: group, consumer, message ids.
-- Hands messages this consumer owns back at once: their idle time is set far past the
-- take-over threshold, and their delivery count back by one (a polite hand-back is not
-- a failed delivery). Returns how many were handed back. One handed back already (a
-- call sent again after its answer was lost) is left as it is: counted back once.
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
