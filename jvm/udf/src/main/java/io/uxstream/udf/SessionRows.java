package io.uxstream.udf;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.UnaryOperator;

/**
 * The finaliser of gap-sessions: the JVM twin of {@code jobs.sessionize.logic.split_gap_session} (the
 * specification; tests/sessionize/test_session_rows_parity.py holds the two equal on random sessions).
 *
 * <p>Input: what {@link SessionEvents} emits for one device, its events packed as a JSON array of arrays in
 * {@code SESSION_EVENT_FIELDS} order (fields are only ever appended, so an event packed before a field
 * existed has it null), the reason the run ended and the device's identity link before it. Output: the
 * final session rows, midnight and max-duration splits applied, each attributed to its user by the
 * identity rule and keyed by pseudonyms; the last one ends with the run's reason.
 */
final class SessionRows {
  static final int MAX_SESSION_FEEDBACK = 20;
  static final long ENGAGED_MIN_DURATION_MS = 10_000;
  static final int ENGAGED_MIN_PAGE_VIEWS = 2;
  static final String FEEDBACK_EVENT = "feedback";
  static final String OPEN = "open";

  private static final JsonFactory JSON = new JsonFactory();
  private static final char[] HEX = "0123456789abcdef".toCharArray();

  /** SessionRules of logic.py; {@code zone} null: no midnight splits. */
  static final class Rules {
    final long gapMs;
    final ZoneId zone;
    final long maxDurationMs;
    final Set<String> conversionEvents;
    final long identityTtlMs;

    Rules(long gapMs, String timezone, long maxDurationMs, Set<String> conversionEvents, long identityTtlMs) {
      if (gapMs <= 0) {
        throw new IllegalArgumentException("split_sessions: gap_ms must be positive, got " + gapMs);
      }
      if (maxDurationMs <= 0) {
        throw new IllegalArgumentException("split_sessions: max_duration_ms must be positive, got " + maxDurationMs);
      }
      if (identityTtlMs < 0) {
        throw new IllegalArgumentException("split_sessions: identity_ttl_ms must not be negative, got " + identityTtlMs);
      }
      this.gapMs = gapMs;
      this.zone = timezone == null || timezone.isEmpty() ? null : ZoneId.of(timezone);
      this.maxDurationMs = maxDurationMs;
      this.conversionEvents = Set.copyOf(conversionEvents);
      this.identityTtlMs = identityTtlMs;
    }

    /** {@code conversionEvents}: a JSON array of event names, as the job renders it. */
    static Rules of(long gapMs, String timezone, long maxDurationMs, String conversionEvents, long identityTtlMs) {
      Set<String> names = new HashSet<>();
      try {
        JsonNode array = new ObjectMapper().readTree(conversionEvents);
        if (array == null || !array.isArray()) {
          throw new IllegalArgumentException(
              "split_sessions: conversion_events must be a JSON array of names, got " + conversionEvents);
        }
        for (JsonNode name : array) {
          names.add(name.asText());
        }
      } catch (IOException e) {
        throw new IllegalArgumentException(
            "split_sessions: conversion_events is not JSON: " + conversionEvents, e);
      }
      return new Rules(gapMs, timezone, maxDurationMs, names, identityTtlMs);
    }

    long nextMidnight(long ts) {
      return SessionEvents.nextMidnight(ts, zone);
    }
  }

  /** SessionEvent of logic.py, in SESSION_EVENT_FIELDS order. */
  static final class Event {
    long ts;
    String eventId;
    String eventType;
    String eventName;
    String pagePath;
    String referrer;
    String utmSource;
    String utmMedium;
    String utmCampaign;
    String deviceType;
    String browser;
    String country;
    Long engagementTimeMs;
    String surveyId;
    String feedbackScale;
    Long feedbackScore;
    String feedbackComment;
    String userId;

    private void set(int field, JsonParser p) throws IOException {
      JsonToken t = p.currentToken();
      boolean isNull = t == JsonToken.VALUE_NULL;
      if (field == 0 || field == 12 || field == 15) {
        if (!isNull && t != JsonToken.VALUE_NUMBER_INT) {
          throw new IllegalArgumentException("packed session event field " + field + " is not an integer: " + t);
        }
        Long value = isNull ? null : p.getLongValue();
        if (field == 0) {
          if (value == null) {
            throw new IllegalArgumentException("packed session event without a time");
          }
          ts = value;
        } else if (field == 12) {
          engagementTimeMs = value;
        } else {
          feedbackScore = value;
        }
        return;
      }
      if (!isNull && t != JsonToken.VALUE_STRING) {
        throw new IllegalArgumentException("packed session event field " + field + " is not a string: " + t);
      }
      String s = isNull ? null : p.getText();
      switch (field) {
        case 1 -> eventId = s;
        case 2 -> eventType = s;
        case 3 -> eventName = s;
        case 4 -> pagePath = s;
        case 5 -> referrer = s;
        case 6 -> utmSource = s;
        case 7 -> utmMedium = s;
        case 8 -> utmCampaign = s;
        case 9 -> deviceType = s;
        case 10 -> browser = s;
        case 11 -> country = s;
        case 13 -> surveyId = s;
        case 14 -> feedbackScale = s;
        case 16 -> feedbackComment = s;
        case 17 -> userId = s;
        default -> throw new IllegalArgumentException("packed session event has more than 18 fields");
      }
    }
  }

  /** Unpack {@code [[ts, event_id, …], …]} (events_from_json of logic.py). */
  static List<Event> unpack(String packed) throws IOException {
    List<Event> events = new ArrayList<>();
    try (JsonParser p = JSON.createParser(packed)) {
      if (p.nextToken() != JsonToken.START_ARRAY) {
        throw new IllegalArgumentException("packed session events are not a JSON array");
      }
      while (p.nextToken() == JsonToken.START_ARRAY) {
        Event e = new Event();
        int field = 0;
        boolean hasTime = false;
        while (p.nextToken() != JsonToken.END_ARRAY) {
          e.set(field, p);
          hasTime |= field == 0;
          field++;
        }
        if (!hasTime || field < 4) {
          throw new IllegalArgumentException("packed session event has " + field + " fields, at least 4 needed");
        }
        events.add(e);
      }
      if (p.currentToken() != JsonToken.END_ARRAY) {
        throw new IllegalArgumentException("packed session events: an element is not an array");
      }
    }
    return events;
  }

  /** Python's str ordering: by code point (String.compareTo orders UTF-16 units, which differs above U+FFFF). */
  static int compareCodePoints(String a, String b) {
    int i = 0;
    int j = 0;
    while (i < a.length() && j < b.length()) {
      int ca = a.codePointAt(i);
      int cb = b.codePointAt(j);
      if (ca != cb) {
        return Integer.compare(ca, cb);
      }
      i += Character.charCount(ca);
      j += Character.charCount(cb);
    }
    return Boolean.compare(i < a.length(), j < b.length());
  }

  /** (ts, user id) marks of logic.py, compared as Python tuples. */
  private static int compareMark(long ts, String user, long otherTs, String otherUser) {
    int byTime = Long.compare(ts, otherTs);
    return byTime != 0 ? byTime : compareCodePoints(user, otherUser);
  }

  /** OpenSession of logic.py. */
  private static final class Open {
    final long start;
    long end;
    final Event first;
    long midnight;
    int eventCount;
    int pageViews;
    final Set<String> pages = new HashSet<>();
    String entryPage;
    String exitPage;
    int errorCount;
    int conversions;
    Long reportedEngagementMs;
    int feedbackResponses;
    final List<Event> feedback = new ArrayList<>();
    Long firstUserTs;
    String firstUser;
    Long lastUserTs;
    String lastUser;

    Open(Event e, Rules rules) {
      start = e.ts;
      end = e.ts;
      first = e;
      midnight = rules.zone == null ? 0 : rules.nextMidnight(e.ts);
    }
  }

  /** One row of the sessions table, in SESSION_ROW_TYPES order (functions.py). */
  static final class Row {
    String sessionId;
    String userKey;
    long sessionStart;
    long sessionEnd;
    long durationMs;
    int eventCount;
    int pageViews;
    int distinctPages;
    String entryPage;
    String exitPage;
    String referrer;
    String utmSource;
    String utmMedium;
    String utmCampaign;
    String deviceType;
    String browser;
    String country;
    int errorCount;
    int conversions;
    long engagedTimeMs;
    boolean engaged;
    boolean bounce;
    String splitReason;
    boolean isFinal;
    int feedbackResponses;
    String feedback;
    String deviceKey;

    Object[] fields() {
      return new Object[] {
        sessionId, userKey, sessionStart, sessionEnd, durationMs, eventCount, pageViews, distinctPages,
        entryPage, exitPage, referrer, utmSource, utmMedium, utmCampaign, deviceType, browser, country,
        errorCount, conversions, engagedTimeMs, engaged, bounce, splitReason, isFinal, feedbackResponses,
        feedback, deviceKey
      };
    }
  }

  private final Rules rules;
  private final UnaryOperator<String> key;
  private final MessageDigest sha256;

  /** {@code key}: raw id → what the rows store (the job: the current pseudonym key). */
  SessionRows(Rules rules, UnaryOperator<String> key) {
    this.rules = rules;
    this.key = key;
    try {
      this.sha256 = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is not available in this JVM", e);
    }
  }

  /** split_gap_session of logic.py: the final sessions of one run of a device's events. */
  List<Row> split(String deviceKey, String packed, String endReason, String linkedUser, Long linkedTs)
      throws IOException {
    List<Event> events = unpack(packed);
    events.sort((a, b) -> a.ts != b.ts ? Long.compare(a.ts, b.ts) : compareCodePoints(a.eventId, b.eventId));
    String[] linkUser = {linkedUser == null || linkedTs == null ? null : linkedUser};
    long[] linkTs = {linkedTs == null ? 0 : linkedTs};
    List<Row> rows = new ArrayList<>();
    Open open = null;
    for (Event e : events) {
      if (open == null) {
        open = new Open(e, rules);
      } else {
        String reason = splitReason(open, e);
        if (reason != null) {
          rows.add(close(open, deviceKey, reason, linkUser, linkTs));
          open = new Open(e, rules);
        }
      }
      extend(open, e);
    }
    if (open != null) {
      rows.add(close(open, deviceKey, SessionEvents.GAP, linkUser, linkTs));
    }
    if (!rows.isEmpty()) {
      rows.get(rows.size() - 1).splitReason = endReason;
    }
    return rows;
  }

  private String splitReason(Open s, Event e) {
    if (e.ts - s.end > rules.gapMs) {
      return SessionEvents.GAP;
    }
    if (rules.zone != null && e.ts >= s.midnight) {
      return SessionEvents.MIDNIGHT;
    }
    if (e.ts - s.start > rules.maxDurationMs) {
      return SessionEvents.MAX_DURATION;
    }
    return null;
  }

  private void extend(Open s, Event e) {
    if (e.ts > s.end) {
      if (rules.zone != null && e.ts >= s.midnight) {
        s.midnight = rules.nextMidnight(e.ts);
      }
      s.end = e.ts;
    }
    s.eventCount++;
    if ("page_view".equals(e.eventType)) {
      s.pageViews++;
      if (e.pagePath != null) {
        s.pages.add(e.pagePath);
        if (s.entryPage == null) {
          s.entryPage = e.pagePath;
        }
        s.exitPage = e.pagePath;
      }
    } else if ("error".equals(e.eventType)) {
      s.errorCount++;
    }
    if (e.eventName != null && rules.conversionEvents.contains(e.eventName)) {
      s.conversions++;
    }
    if (e.engagementTimeMs != null) {
      s.reportedEngagementMs = (s.reportedEngagementMs == null ? 0 : s.reportedEngagementMs) + e.engagementTimeMs;
    }
    if (e.userId != null && !e.userId.isEmpty()) {
      if (s.firstUser == null || compareMark(e.ts, e.userId, s.firstUserTs, s.firstUser) < 0) {
        s.firstUserTs = e.ts;
        s.firstUser = e.userId;
      }
      if (s.lastUser == null || compareMark(e.ts, e.userId, s.lastUserTs, s.lastUser) > 0) {
        s.lastUserTs = e.ts;
        s.lastUser = e.userId;
      }
    }
    if (FEEDBACK_EVENT.equals(e.eventType)) {
      s.feedbackResponses++;
      if (s.feedback.size() < MAX_SESSION_FEEDBACK) {
        s.feedback.add(e);
      }
    }
  }

  /** A final row of {@code s} (SessionState._close); moves the device's link past its latest user id. */
  private Row close(Open s, String deviceKey, String reason, String[] linkUser, long[] linkTs) {
    String owner;
    if (s.firstUser != null) {
      owner = s.firstUser;
    } else if (linkUser[0] != null && s.start - linkTs[0] <= rules.identityTtlMs) {
      owner = linkUser[0];
    } else {
      owner = deviceKey;
    }
    Row r = new Row();
    r.userKey = key.apply(owner);
    r.sessionId = sessionId(r.userKey, s.start);
    r.sessionStart = s.start;
    r.sessionEnd = s.end;
    r.durationMs = s.end - s.start;
    r.eventCount = s.eventCount;
    r.pageViews = s.pageViews;
    r.distinctPages = s.pages.size();
    r.entryPage = s.entryPage;
    r.exitPage = s.exitPage;
    r.referrer = s.first.referrer;
    r.utmSource = s.first.utmSource;
    r.utmMedium = s.first.utmMedium;
    r.utmCampaign = s.first.utmCampaign;
    r.deviceType = s.first.deviceType;
    r.browser = s.first.browser;
    r.country = s.first.country;
    r.errorCount = s.errorCount;
    r.conversions = s.conversions;
    r.engagedTimeMs = s.reportedEngagementMs == null ? r.durationMs : s.reportedEngagementMs;
    r.engaged =
        r.engagedTimeMs > ENGAGED_MIN_DURATION_MS
            || s.pageViews >= ENGAGED_MIN_PAGE_VIEWS
            || s.conversions >= 1;
    r.bounce = !r.engaged;
    r.splitReason = reason;
    r.isFinal = true;
    r.feedbackResponses = s.feedbackResponses;
    r.feedback = feedbackJson(s.feedback);
    r.deviceKey = key.apply(deviceKey);
    if (s.lastUser != null
        && (linkUser[0] == null || compareMark(s.lastUserTs, s.lastUser, linkTs[0], linkUser[0]) > 0)) {
      linkUser[0] = s.lastUser;
      linkTs[0] = s.lastUserTs;
    }
    return r;
  }

  /** session_id of logic.py: the first 128 bits of SHA-256("user key\x1fstart ms") in lowercase hex. */
  String sessionId(String userKey, long startMs) {
    byte[] digest = sha256.digest((userKey + '\u001f' + startMs).getBytes(StandardCharsets.UTF_8));
    char[] out = new char[32];
    for (int i = 0; i < 16; i++) {
      out[2 * i] = HEX[(digest[i] >> 4) & 0xf];
      out[2 * i + 1] = HEX[digest[i] & 0xf];
    }
    return new String(out);
  }

  /** feedback_json of logic.py: the text Python's json.dumps(ensure_ascii=False, compact) gives. */
  static String feedbackJson(List<Event> entries) {
    if (entries.isEmpty()) {
      return null;
    }
    StringBuilder b = new StringBuilder("[");
    for (Event e : entries) {
      if (b.length() > 1) {
        b.append(',');
      }
      b.append("{\"ts\":").append(e.ts).append(",\"survey_id\":");
      string(b, e.surveyId).append(",\"scale\":");
      string(b, e.feedbackScale).append(",\"score\":").append(e.feedbackScore == null ? "null" : e.feedbackScore);
      b.append(",\"comment\":");
      string(b, e.feedbackComment).append('}');
    }
    return b.append(']').toString();
  }

  private static StringBuilder string(StringBuilder b, String s) {
    if (s == null) {
      return b.append("null");
    }
    b.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        case '\b' -> b.append("\\b");
        case '\f' -> b.append("\\f");
        default -> {
          if (c < 0x20) {
            b.append("\\u00").append(HEX[c >> 4]).append(HEX[c & 0xf]);
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"');
  }

  /**
   * {@code java -cp uxstream-udf.jar io.uxstream.udf.SessionRows KEY_FILES}: one JSON object per input line
   * ({@code rules}: gap_ms, timezone ('' = no midnight splits), max_duration_ms, conversion_events (a list),
   * identity_ttl_ms; {@code device_key}, {@code packed}, {@code end_reason}, {@code linked_user},
   * {@code linked_ts}), one line out per line in: the JSON list of its rows, fields named as SessionRow's
   * (the parity test with split_gap_session, tests/sessionize/test_session_rows_parity.py).
   */
  public static void main(String[] args) throws IOException {
    KeyRing ring = new KeyRing(args[0]);
    ObjectMapper mapper = new ObjectMapper();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      JsonNode input = mapper.readTree(line);
      JsonNode r = input.get("rules");
      Rules rules =
          Rules.of(
              r.get("gap_ms").asLong(),
              r.get("timezone").asText(),
              r.get("max_duration_ms").asLong(),
              mapper.writeValueAsString(r.get("conversion_events")),
              r.get("identity_ttl_ms").asLong());
      SessionRows finaliser = new SessionRows(rules, raw -> ring.pseudonym(0, raw));
      JsonNode linkedTs = input.get("linked_ts");
      List<Row> rows =
          finaliser.split(
              input.get("device_key").asText(),
              input.get("packed").asText(),
              input.get("end_reason").asText(),
              input.get("linked_user").isNull() ? null : input.get("linked_user").asText(),
              linkedTs.isNull() ? null : linkedTs.asLong());
      List<Map<String, Object>> listed = new ArrayList<>();
      for (Row row : rows) {
        Object[] values = row.fields();
        Map<String, Object> named = new LinkedHashMap<>();
        for (int i = 0; i < values.length; i++) {
          named.put(SplitSessions.FIELDS.get(i), values[i]);
        }
        listed.add(named);
      }
      out.write(mapper.writeValueAsString(listed));
      out.newLine();
    }
    out.flush();
  }
}
