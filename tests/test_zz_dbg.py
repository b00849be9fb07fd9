from edgecomplete import CompletionRequest, Prompt
S='Once upon a time, in a small village by the sea, there lived'
def test_x(client):
    def lp(): return client.complete(CompletionRequest(prompt=Prompt.from_text(S), maximum_tokens=2, log_probs=0), model='smollm2-135m').completions[0].log_probs[0][' a']
    a = lp(); b = lp()
    print("\nLP", a, b, client.engine('smollm2-135m').stats())
    assert a == b
