-- A fatal answer (401/403/439) stops the token in every process; the first one is kept.
-- KEYS[1] the token's fatal record
-- ARGV[1] kind (exception class)  ARGV[2] code  ARGV[3] status  ARGV[4] message
-- ARGV[5] milliseconds it is remembered: long enough for every heartbeat to see it, short
-- enough that a renewed token is not refused for long.
if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'code', ARGV[2], 'status', ARGV[3],
               'message', ARGV[4])
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
