/** Realtime playground: chat with an endpoint, streamed; each answer shows cache hit or miss,
 * latency, time to first token and cost, and can be replayed to show the cache answering. */
import { useRef, useState } from "react";
import { PickResource } from "../components/PickResource";
import { ErrorMessage } from "../components/ui";
import { isCacheHit, sendChat, type Answer, type ChatMessage } from "../models/chat";
import { ms, usd } from "../models/format";

interface Turn {
  id: number;
  prompt: string;
  answer: Answer | null;
  partial: string;
  error: string | null;
  replay: boolean;
}

export default function Playground({ ns, name }: { ns?: string | undefined; name?: string | undefined }) {
  const [turns, setTurns] = useState<Turn[]>([]);
  const [prompt, setPrompt] = useState("");
  const [busy, setBusy] = useState(false);
  const [apiKey, setApiKey] = useState("");
  const nextId = useRef(1);

  async function ask(text: string, replay: boolean) {
    if (!ns || !name || !text.trim()) return;
    const id = nextId.current++;
    const update = (patch: Partial<Turn>) =>
      setTurns((previous) => previous.map((turn) => (turn.id === id ? { ...turn, ...patch } : turn)));
    setTurns((previous) => [...previous, { id, prompt: text, answer: null, partial: "", error: null, replay }]);
    setBusy(true);
    try {
      // Each prompt is sent on its own (one user message): the same prompt is the same cache key.
      const messages: ChatMessage[] = [{ role: "user", content: text }];
      const answer = await sendChat(ns, name, messages, { apiKey, onText: (partial) => update({ partial }) });
      update({ answer, partial: answer.content });
    } catch (error) {
      update({ error: (error as Error).message });
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="page">
      <div className="page-head">
        <h1>Realtime playground</h1>
        <PickResource plural="realtimeendpoints" page="playground" ns={ns} name={name} />
        <label className="small">
          Endpoint API key (only with spec.auth){" "}
          <input type="password" autoComplete="off" value={apiKey} onChange={(event) => setApiKey(event.target.value)} />
        </label>
      </div>
      {!ns || !name ? (
        <p className="muted">Choose a RealtimeEndpoint to chat with.</p>
      ) : (
        <>
          <ol className="chat" aria-label="Conversation" aria-live="polite">
            {turns.map((turn) => (
              <li key={turn.id} className="turn">
                <p className="bubble bubble-user">
                  <span className="sr-only">You: </span>
                  {turn.prompt}
                  {turn.replay ? <span className="tag">replay</span> : null}
                </p>
                <div className="bubble bubble-assistant" data-testid="answer">
                  <span className="sr-only">Endpoint: </span>
                  {turn.error ? (
                    <ErrorMessage title="The endpoint refused" error={turn.error} />
                  ) : (
                    <p className="answer-text">{turn.partial || (turn.answer ? "" : "…")}</p>
                  )}
                  {turn.answer ? (
                    <p className="answer-meta" data-testid="answer-meta">
                      <span className={isCacheHit(turn.answer.cache) ? "tag tag-hit" : "tag tag-miss"}>
                        cache {isCacheHit(turn.answer.cache) ? "hit" : turn.answer.cache}
                      </span>
                      <span>latency {ms(turn.answer.latencyMs)}</span>
                      <span>first token {ms(turn.answer.ttftMs)}</span>
                      <span data-testid="answer-cost">cost {usd(turn.answer.costUsd)}</span>
                      {turn.answer.completionTokens !== null ? (
                        <span>
                          {turn.answer.promptTokens ?? "?"} → {turn.answer.completionTokens} tokens
                        </span>
                      ) : null}
                      <button type="button" disabled={busy} onClick={() => void ask(turn.prompt, true)}>
                        Replay this prompt
                      </button>
                    </p>
                  ) : null}
                </div>
              </li>
            ))}
          </ol>
          <form
            className="composer"
            onSubmit={(event) => {
              event.preventDefault();
              const text = prompt;
              setPrompt("");
              void ask(text, false);
            }}
          >
            <label htmlFor="prompt" className="sr-only">
              Message
            </label>
            <textarea
              id="prompt"
              rows={2}
              placeholder="Ask something… (Enter sends, Shift+Enter for a new line)"
              value={prompt}
              onChange={(event) => setPrompt(event.target.value)}
              onKeyDown={(event) => {
                if (event.key === "Enter" && !event.shiftKey) {
                  event.preventDefault();
                  event.currentTarget.form?.requestSubmit();
                }
              }}
            />
            <button type="submit" disabled={busy || !prompt.trim()}>
              Send
            </button>
          </form>
        </>
      )}
    </div>
  );
}
