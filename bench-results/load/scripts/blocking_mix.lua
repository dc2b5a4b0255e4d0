-- 90 % GET /plaintext, 10 % GET /blocking?ms=1: every 10th request.
local plaintext, blocking
local sent = 0

function init(args)
  plaintext = wrk.format("GET", "/plaintext")
  blocking = wrk.format("GET", "/blocking?ms=1")
end

function request()
  sent = sent + 1
  if sent % 10 == 0 then
    return blocking
  end
  return plaintext
end
