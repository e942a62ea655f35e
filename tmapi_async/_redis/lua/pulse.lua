-- The fleet's pulse, shared by the scripts that workers run every heartbeat: a hash
-- {last: when a worker last ran one (ms, Redis clock), hold: no take-over before}.
-- A gap longer than ARGV gap (Redis frozen or restarted, every worker cut off) makes
-- every shop look idle, the live workers' too: take-overs wait ``hold`` ms, time for
-- each worker to renew what it holds. Expects ``P`` (the pulse key), ``GAP`` (0: no
-- pulse) and ``HOLD``; sets ``t`` (Redis's TIME) and ``now`` (in ms).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if GAP > 0 then
  local last = tonumber(redis.call('HGET', P, 'last') or '0')
  if now - last > GAP then redis.call('HSET', P, 'hold', now + HOLD) end
  redis.call('HSET', P, 'last', now)
end
