-- chatmail push hook, run by Dovecot's LMTP (push_notification_driver = lua:file=...).
--
-- For every new message delivered into a mailbox, set the private mailbox attribute
-- /private/messagenew. Dovecot stores attributes through mail_attribute_dict, i.e. it hands
-- the change to chatmail-pushnotify, which queues one push notification per device token of
-- the user. The user's own sent mail (a copy delivered to the sender) wakes no device.
-- At most one trigger per mailbox and delivery transaction.

local function is_own_mail(username, event)
  local from = event.from_address
  if from == nil or from == "" then
    return false
  end
  return string.lower(from) == string.lower(username)
end

function dovecot_lua_notify_begin_txn(user)
  return { user = user, triggered = {} }
end

function dovecot_lua_notify_event_message_new(ctx, event)
  if ctx.triggered[event.mailbox] or is_own_mail(ctx.user.username, event) then
    return
  end
  ctx.triggered[event.mailbox] = true
  local mailbox = ctx.user:mailbox(event.mailbox)
  mailbox:sync()
  mailbox:metadata_set("/private/messagenew", "")
  mailbox:free()
end

function dovecot_lua_notify_end_txn(ctx)
end
