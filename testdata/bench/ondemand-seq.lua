-- wrk script of testdata/bench/ondemand-ab.sh: requests walk files FIRST .. FIRST+N-1 of the
-- benchmark tree in order (then wrap), each with ?location=REGION, so that the first N
-- requests name N distinct files: wrk -s ondemand-seq.lua URL -- N FIRST REGION.
-- The paths are the ones ondemand-ab.sh generates under .tmp/bench-ondemand/origin.
local n, first, region, i = 10000, 0, "eu-central-1", 0
function init(args)
  if args[1] then n = tonumber(args[1]) end
  if args[2] then first = tonumber(args[2]) end
  if args[3] then region = args[3] end
end
request = function()
  local k = first + (i % n)
  i = i + 1
  return wrk.format("GET", "/pub/bench/linux/releases/40/Everything/x86_64/os/Packages/p/python3-package-number-" ..
    k .. "-1.2.3-1.fc40.noarch.rpm?location=" .. region)
end
