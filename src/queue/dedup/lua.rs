//! The Lua behind each kind of seen filter. A check-and-add script is a
//! prelude from here followed by its body; the prelude defines
//! `seen_filter(keys, f, argv, a)`, which returns `width` (how many ARGV
//! entries one fingerprint takes, `Filter::push_fingerprint`) and three
//! functions of the ARGV index of a fingerprint: `has(i)`, `add(i)` (true
//! if it was new, and records it), and `tally(n)` (counts `n` new ones).
//! The filter's keys are `keys[f..]`, its two arguments `argv[a]`, `argv[a + 1]`.
//!
//! Everything a body does runs in one script, so a check-and-add and the
//! push it decides are one atomic step: a retried script whose reply was
//! lost finds its fingerprints recorded *and* their URLs or items already
//! pushed, exactly as with a set.

/// A Redis set of 16-byte hashes (the shared frontier's URLs).
pub const SET: &str = r"
local function seen_filter(keys, f, argv, a)
  local set = keys[f]
  return 1, function(i) return redis.call('SISMEMBER', set, argv[i]) == 1 end,
    function(i) return redis.call('SADD', set, argv[i]) == 1 end,
    function(n) end
end
";

/// A sorted set scored by the time first seen (item fingerprints, which
/// `--seen-ttl` trims). Argument: now, in Unix seconds.
pub const ZSET: &str = r"
local function seen_filter(keys, f, argv, a)
  local set, now = keys[f], argv[a]
  return 1, function(i) return redis.call('ZSCORE', set, argv[i]) ~= false end,
    function(i) return redis.call('ZADD', set, 'NX', now, argv[i]) == 1 end,
    function(n) end
end
";

/// A Bloom filter on bitmaps. Keys: the parameters hash, then the pieces.
/// Argument: k. A fingerprint arrives as its piece and k bit offsets, in
/// decimal, computed by `Params::positions` (Lua would spend more time on
/// the hashing and on formatting offsets than Redis spends on the bits).
/// One BITFIELD per fingerprint; `add`'s SETs return the old bits, and a
/// fingerprint is new if any of them was 0.
pub const BITMAP: &str = r"
local function seen_filter(keys, f, argv, a)
  local k = tonumber(argv[a + 1])
  local params = keys[f]
  local get, set = {}, {}
  for j = 1, k do
    get[3 * j - 2], get[3 * j - 1] = 'GET', 'u1'
    set[4 * j - 3], set[4 * j - 2], set[4 * j] = 'SET', 'u1', '1'
  end
  local function probe(i, cmd, args, stride)
    for j = 1, k do args[stride * (j - 1) + 3] = argv[i + j] end
    local key = keys[f + 1 + tonumber(argv[i])]
    for _, old in ipairs(redis.call(cmd, key, unpack(args))) do
      if old == 0 then return false end
    end
    return true
  end
  return k + 1, function(i) return probe(i, 'BITFIELD_RO', get, 3) end,
    function(i) return not probe(i, 'BITFIELD', set, 4) end,
    function(n)
      if n > 0 then redis.call('HINCRBY', params, 'count', n) end
    end
end
";

/// RedisBloom's filter. Keys: the parameters hash, then the BF key.
pub const MODULE: &str = r"
local function seen_filter(keys, f, argv, a)
  local params, bf = keys[f], keys[f + 1]
  return 1, function(i) return redis.call('BF.EXISTS', bf, argv[i]) == 1 end,
    function(i) return redis.call('BF.ADD', bf, argv[i]) == 1 end,
    function(n)
      if n > 0 then redis.call('HINCRBY', params, 'count', n) end
    end
end
";

/// Creates a Bloom filter unless its parameters hash exists; returns the
/// stored parameters (kind, capacity, error, bits, pieces, k) if it does.
/// KEYS: parameters hash, then the pieces (or the BF key). ARGV: kind,
/// capacity, error, bits, pieces, k, bytes per piece.
/// Pieces are SET whole, so each is one exact allocation made up front: a
/// bitmap grown by SETBIT would over-allocate, and an OOM would hit mid-crawl.
/// The first write is the one that can be refused for OOM, and then nothing
/// was written; once one write ran, Redis lets the script finish.
pub const CREATE: &str = r"
local p = redis.call('HMGET', KEYS[1], 'kind', 'capacity', 'error', 'bits', 'pieces', 'k')
if p[1] then
  for i = 2, #KEYS do
    local t = redis.call('TYPE', KEYS[i]).ok
    if t ~= 'none' and t ~= 'string' and t ~= 'MBbloom--' then
      return redis.error_reply('WRONGTYPE the Bloom filter key ' .. KEYS[i] .. ' holds a ' .. t)
    end
  end
  return p
end
if ARGV[1] == 'module' then
  redis.call('BF.RESERVE', KEYS[2], ARGV[3], ARGV[2])
else
  -- Doubling, not string.rep, which appends its 7 million bytes one by one.
  local n, zeros = tonumber(ARGV[7]), '\0'
  while #zeros * 2 <= n do zeros = zeros .. zeros end
  zeros = zeros .. string.sub(zeros, 1, n - #zeros)
  for i = 2, #KEYS do redis.call('SET', KEYS[i], zeros) end
end
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'capacity', ARGV[2], 'error', ARGV[3],
  'bits', ARGV[4], 'pieces', ARGV[5], 'k', ARGV[6], 'count', 0)
return false";

/// KEYS: the filter's. ARGV: its two arguments, then fingerprints. Adds
/// each; returns 1 per new one. (`qpipe bench`'s way in; crawls and the
/// writer have their own bodies.)
pub const ADD_BODY: &str = r"
local width, _, add, tally = seen_filter(KEYS, 1, ARGV, 1)
local out, n = {}, 0
for i = 3, #ARGV, width do
  if add(i) then out[#out + 1] = 1; n = n + 1 else out[#out + 1] = 0 end
end
tally(n)
return out";

/// Like `ADD_BODY`, but only asks: 1 per fingerprint the filter has.
pub const HAS_BODY: &str = r"
local width, has = seen_filter(KEYS, 1, ARGV, 1)
local out = {}
for i = 3, #ARGV, width do out[#out + 1] = has(i) and 1 or 0 end
return out";
