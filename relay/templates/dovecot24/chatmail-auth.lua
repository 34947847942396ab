-- Dovecot 2.4 passdb and userdb of a chatmail relay: accounts live in chatmail-doveauth.
-- Rendered by chatmail-relay from {{CHATMAIL_INI}}; edits here are overwritten.
--
-- Dovecot 2.4 has no dict passdb/userdb, so this script asks chatmail-doveauth over its unix
-- socket in the dict protocol (with luasocket, Debian's lua-socket) exactly what Dovecot 2.3's
-- `driver = dict` asked (templates/dovecot/auth.conf):
--   shared/passdb/<password>"<user>  the account's record; an unknown address is created if
--                                    the login rules allow it
--   shared/userdb/<user>             the account's record, never created
-- The record is a flat JSON object of strings (home, uid, gid, password). It runs in Dovecot's
-- auth-worker processes (as vmail, which may use the socket): a blocking call blocks one
-- worker, as the dict driver did.
local unix = require("socket.unix")

local SOCKET = "{{DOVEAUTH_SOCKET}}"
local conn = nil

local function connect()
  local c = (unix.stream or unix)()
  c:settimeout(30)
  local ok, err = c:connect(SOCKET)
  if not ok then
    c:close()
    return nil, "connect " .. SOCKET .. ": " .. tostring(err)
  end
  -- dict protocol 3.2 (which doveauth speaks), value type string, no user, dict "auth"
  c:send("H3\t2\t0\t\tauth\n")
  return c
end

-- One dict lookup. Returns value string, or nil (not found), or raises on failure.
local function dict_lookup(key, user)
  local line = "L" .. dovecot.tabescape(key) .. "\t" .. dovecot.tabescape(user) .. "\n"
  for attempt = 1, 2 do
    if conn == nil then
      local err
      conn, err = connect()
      if conn == nil then error(err) end
    end
    local ok = conn:send(line)
    local reply, err = nil, nil
    if ok then reply, err = conn:receive("*l") end
    if reply ~= nil then
      local c = reply:sub(1, 1)
      if c == "O" then return dovecot.tabunescape(reply:sub(2)) end
      if c == "N" then return nil end
      error("doveauth: " .. reply)
    end
    conn:close(); conn = nil  -- stale connection (doveauth restarted): retry once
    if attempt == 2 then error("doveauth: " .. tostring(err)) end
  end
end

-- Flat JSON object with string values (what doveauth sends).
local function parse_json(s)
  local t, i, n = {}, 1, #s
  local function str()  -- s:sub(i,i) == '"'
    local out = {}
    i = i + 1
    while i <= n do
      local c = s:sub(i, i)
      if c == '"' then i = i + 1; return table.concat(out) end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        out[#out + 1] = ({ n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" })[e] or e
        i = i + 2
      else
        out[#out + 1] = c; i = i + 1
      end
    end
    error("bad JSON")
  end
  while i <= n do
    local c = s:sub(i, i)
    if c == '"' then
      local k = str()
      i = s:find('"', i, true) or error("bad JSON")
      t[k] = str()
    else
      i = i + 1
    end
  end
  return t
end

-- What Dovecot 2.3's %E did: a backslash before " ' and \ (doveauth splits password and user
-- at the first unescaped ").
local function esc(s)
  return (s:gsub("[\"'\\]", "\\%0"))
end

local function userdb_fields(rec)
  return { home = rec.home, uid = rec.uid, gid = rec.gid }
end

-- PLAIN login (IMAP LOGIN/AUTHENTICATE, Postfix SASL, doveadm auth test): cleartext available.
function auth_password_verify(req, password)
  local v = dict_lookup("shared/passdb/" .. esc(password) .. '"' .. esc(req.user), req.user)
  if v == nil then
    return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "no such account and not created"
  end
  local rec = parse_json(v)
  if rec.password == nil or rec.password == "" then
    return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "empty password"
  end
  local ret, err = req:password_verify(rec.password, password)
  if ret ~= 1 then
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, err or "password mismatch"
  end
  return dovecot.auth.PASSDB_RESULT_OK, {}
end

-- Credentials lookup (doveadm auth lookup, non-PLAIN mechanisms): never creates.
function auth_passdb_lookup(req)
  local v = dict_lookup("shared/userdb/" .. esc(req.user), req.user)
  if v == nil then return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "" end
  return dovecot.auth.PASSDB_RESULT_OK, { password = parse_json(v).password }
end

function auth_userdb_lookup(req)
  local v = dict_lookup("shared/userdb/" .. esc(req.user), req.user)
  if v == nil then return dovecot.auth.USERDB_RESULT_USER_UNKNOWN, "" end
  return dovecot.auth.USERDB_RESULT_OK, userdb_fields(parse_json(v))
end

-- doveadm -A: the list of users.
function auth_userdb_iterate()
  local c = assert(connect())
  c:send("I0\t0\tshared/userdb/\t\n")
  local users = {}
  while true do
    local line = c:receive("*l")
    if line == nil or line == "" then break end
    local key = dovecot.tabunescape(line:sub(2):match("^([^\t]*)"))
    table.insert(users, (key:gsub("^shared/userdb/", "")))
  end
  c:close()
  return users
end
