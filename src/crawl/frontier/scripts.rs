//! The shared frontier's Lua scripts; each runs atomically in the slot of
//! `{NAME}` (see `shared.rs` for the keys).

/// KEYS: frontier, leases, this request's token key. ARGV: now_ms, lease_ms.
/// Re-queues expired leases, then leases the next URL. Returns
/// `{1, member}` or `{0, number_still_leased}`. A retry whose first reply
/// was lost gets the same URL back (from the token key), instead of leasing
/// a second one and leaving the first to wait out its lease.
pub const TAKE: &str = r"
local prev = redis.call('GET', KEYS[3])
if prev then return {1, prev} end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, m in ipairs(expired) do
  redis.call('ZREM', KEYS[2], m)
  redis.call('LPUSH', KEYS[1], m)
end
local m = redis.call('LPOP', KEYS[1])
if m then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[2]), m)
  redis.call('SET', KEYS[3], m, 'PX', ARGV[2])
  return {1, m}
end
return {0, redis.call('ZCARD', KEYS[2])}";

/// KEYS: frontier, leases, the finished page's TAKE token, then the seen
/// filter's keys (after its prelude, `dedup::Filter::script`). ARGV:
/// finished member ('' for none), the most URLs the frontier may hold, the
/// filter's two arguments, then hash/member pairs (a hash takes `width`). Queues unseen links while
/// there is room and drops the lease, atomically. A link with no room is
/// not marked seen. Returns `{added, dropped_for_room, verdicts}`, one
/// letter per link: `a`dded, `d`uplicate, or `f`ull.
///
/// A retry whose reply was lost finds its links marked seen and already
/// queued (by the same atomic run): they count as duplicates, none is lost.
pub const DONE: &str = r"
local width, has, add, tally = seen_filter(KEYS, 4, ARGV, 3)
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[2], ARGV[1]) end
redis.call('DEL', KEYS[3])
local room = tonumber(ARGV[2]) - redis.call('LLEN', KEYS[1])
local added, full, verdicts = 0, 0, {}
for i = 5, #ARGV, width + 1 do
  local v = 'd'
  if room > 0 then
    if add(i) then
      redis.call('RPUSH', KEYS[1], ARGV[i + width])
      added = added + 1
      room = room - 1
      v = 'a'
    end
  elseif not has(i) then
    full = full + 1
    v = 'f'
  end
  verdicts[#verdicts + 1] = v
end
tally(added)
return {added, full, table.concat(verdicts)}";

/// KEYS: frontier, leases, the URL's TAKE token. ARGV: member. Puts a leased URL that was not
/// fetched back at the front of the frontier, unless its lease already
/// expired (then a `TAKE` re-queued it already).
pub const RELEASE: &str = r"
redis.call('DEL', KEYS[3])
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[1], ARGV[1])
  return 1
end
return 0";
