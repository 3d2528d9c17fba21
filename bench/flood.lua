-- wrk script: a login flood. Every request is POST /login with a wrong
-- password for a random (mostly unknown) username, with a valid anonymous
-- CSRF token, so that each one that is admitted costs a full Argon2id
-- verification (unknown names are checked against a dummy hash) and no name
-- collects enough failures to lock.
--   FLOOD_COOKIE  Cookie header value holding the anonymous CSRF cookie
--   FLOOD_TOKEN   the csrf_token of the login form served with that cookie
-- At the end: one FLOODSTAT line with the status-code counts.
local token = os.getenv("FLOOD_TOKEN") or ""
local cookie = os.getenv("FLOOD_COOKIE") or ""
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  s2xx, s3xx, s4xx, s503, s5xx, sother = 0, 0, 0, 0, 0, 0
  retry_after = 0
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end

local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Cookie"] = cookie,
  ["User-Agent"] = "portcullis-bench/1.0",
}

function request()
  local body = string.format("username=flood%07d&password=wrong-password-%06d&csrf_token=%s",
    math.random(0, 9999999), math.random(0, 999999), token)
  return wrk.format("POST", "/login", headers, body)
end

function response(status, hdrs, body)
  if status == 503 then
    s503 = s503 + 1
    if hdrs["Retry-After"] or hdrs["retry-after"] then retry_after = retry_after + 1 end
  elseif status >= 500 then s5xx = s5xx + 1
  elseif status >= 400 then s4xx = s4xx + 1
  elseif status >= 300 then s3xx = s3xx + 1
  elseif status >= 200 then s2xx = s2xx + 1
  else sother = sother + 1 end
end

function done(summary, latency, requests)
  local t = { s2xx = 0, s3xx = 0, s4xx = 0, s503 = 0, s5xx = 0, sother = 0, retry_after = 0 }
  for _, th in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (th:get(k) or 0) end
  end
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "FLOODSTAT rps=%.1f requests=%d s2xx=%d s3xx=%d s4xx=%d s503=%d s503_retry_after=%d s5xx_other=%d sother=%d " ..
    "p50_ms=%.2f p99_ms=%.2f sock_err=%d\n",
    summary.requests / secs, summary.requests, t.s2xx, t.s3xx, t.s4xx, t.s503, t.retry_after, t.s5xx, t.sother,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout))
end
