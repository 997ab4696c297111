/** Catches a view's render error and shows it as a readable message with a way back, so a broken
 * page never leaves the screen blank. */
import { Component, type ErrorInfo, type ReactNode } from "react";

interface Props {
  children: ReactNode;
  /** changes when the user navigates: the boundary resets so the next page can render */
  resetKey?: string;
}

interface State {
  error: Error | null;
  resetKey: string | undefined;
}

export class ErrorBoundary extends Component<Props, State> {
  state: State = { error: null, resetKey: this.props.resetKey };

  static getDerivedStateFromError(error: Error): Partial<State> {
    return { error };
  }

  static getDerivedStateFromProps(props: Props, state: State): Partial<State> | null {
    if (props.resetKey !== state.resetKey) return { error: null, resetKey: props.resetKey };
    return null;
  }

  componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error("console view failed", error, info.componentStack);
  }

  render(): ReactNode {
    const { error } = this.state;
    if (!error) return this.props.children;
    return (
      <div role="alert" className="error-box">
        <h2>This page failed to show</h2>
        <p>{error.message || String(error)}</p>
        <p>
          <a href="#/">Back to the overview</a> or{" "}
          <button type="button" onClick={() => this.setState({ error: null })}>
            try again
          </button>
        </p>
      </div>
    );
  }
}
