/*!
 * flywheel-feedback.js: send feedback on one LLM answer from the browser to a Flywheel gateway.
 * No dependencies, no build step, served by the gateway at /static/flywheel-feedback.js.
 *
 * Every answer from the gateway carries two response headers: Flywheel-Interaction-Id and
 * Flywheel-Feedback-Token. Your backend (which holds the API key) passes both to the page along
 * with the answer; the token lets the page give feedback on that one answer, and nothing else.
 * The page's origin must be listed in the gateway's `server.cors_origins`.
 *
 *   <script src="https://gateway.example.com/static/flywheel-feedback.js"></script>
 *   <script>
 *     const fb = Flywheel.feedback({
 *       baseUrl: "https://gateway.example.com",   // default: this page's origin
 *       token: answer.feedbackToken,               // the Flywheel-Feedback-Token header
 *       interactionId: answer.interactionId,       // the Flywheel-Interaction-Id header
 *       source: "web-chat",                        // optional; default "browser"
 *     });
 *     thumbsUpButton.onclick = () => fb.thumbsUp();
 *   </script>
 *
 * Methods (each returns a Promise of the stored feedback, {id, interaction_id}; a rejection is
 * an Error with .status and the gateway's .message):
 *   fb.thumbsUp()  fb.thumbsDown()      thumbs: "up" / "down"
 *   fb.rate(n)                          rating: 1 to 5
 *   fb.correct(text)                    the text the user kept instead (outcome "modified")
 *   fb.accept()  fb.reject()            outcome: "accepted" / "rejected"
 *   fb.comment(text)                    free text
 *   fb.send({...})                      any fields of POST /v1/feedback (score, dimensions...)
 *
 * Each call also sends `time_to_decision_ms` (since Flywheel.feedback() was called, i.e. since
 * the answer was shown) and an idempotency key, so the one automatic retry after a network
 * error or a 5xx can never store the feedback twice.
 */
(function (root) {
  "use strict";

  var TOKEN_HEADER = "Flywheel-Feedback-Token";

  function newKey() {
    if (root.crypto && root.crypto.randomUUID) return root.crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function feedback(options) {
    options = options || {};
    if (!options.token && !options.interactionId) {
      throw new Error("Flywheel.feedback needs the answer's token (and its interactionId)");
    }
    var baseUrl = (options.baseUrl || (root.location ? root.location.origin : "")).replace(/\/$/, "");
    var shownAt = Date.now();

    function post(body, attemptsLeft) {
      var headers = { "Content-Type": "application/json" };
      if (options.token) headers[TOKEN_HEADER] = options.token;
      return root.fetch(baseUrl + "/v1/feedback", {
        method: "POST",
        headers: headers,
        body: JSON.stringify(body),
      }).then(
        function (response) {
          if (response.status >= 500 && attemptsLeft > 0) return post(body, attemptsLeft - 1);
          return response.json().then(function (payload) {
            if (response.ok) return payload;
            var error = new Error((payload.error && payload.error.message) || response.statusText);
            error.status = response.status;
            error.param = payload.error && payload.error.param;
            throw error;
          });
        },
        function (networkError) {
          if (attemptsLeft > 0) return post(body, attemptsLeft - 1);
          throw networkError;
        }
      );
    }

    function send(fields) {
      var body = { source: options.source || "browser", idempotency_key: newKey() };
      if (options.interactionId) body.interaction_id = options.interactionId;
      body.time_to_decision_ms = Date.now() - shownAt;
      for (var name in fields) {
        if (Object.prototype.hasOwnProperty.call(fields, name)) body[name] = fields[name];
      }
      return post(body, 1);
    }

    return {
      send: send,
      thumbsUp: function () { return send({ thumbs: "up" }); },
      thumbsDown: function () { return send({ thumbs: "down" }); },
      rate: function (rating) { return send({ rating: rating }); },
      correct: function (text) { return send({ correction: text, outcome: "modified" }); },
      accept: function () { return send({ outcome: "accepted" }); },
      reject: function () { return send({ outcome: "rejected" }); },
      comment: function (text) { return send({ comment: text }); },
    };
  }

  root.Flywheel = root.Flywheel || {};
  root.Flywheel.feedback = feedback;
  root.Flywheel.TOKEN_HEADER = TOKEN_HEADER;
})(typeof window !== "undefined" ? window : this);
