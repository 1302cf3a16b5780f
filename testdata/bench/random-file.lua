-- wrk script of the download benchmark: every request names one of 1 000 000 synthetic
-- files at random (testdata/bench/serve.go -files N builds the same paths).
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/pub/fedora/linux/releases/40/Everything/x86_64/os/Packages/p/python3-package-number-" ..
    math.random(0, 999999) .. "-1.2.3-1.fc40.noarch.rpm")
end
